"""Where the drift watcher keeps production traffic in the artifact store (a path, file:// or s3://), and where
validate_data finds it to measure skew:

    <root>/serving/<namespace>/<deployment>/requests/date=<day>/window-<n>.parquet   every request, with its answer
    <root>/serving/<namespace>/<deployment>/labelled/part-<n>.parquet               rows whose truth came back
    <root>/serving/<namespace>/<deployment>/spans/<trigger key>/part-<n>.parquet    frozen copy for one retrain
"""

from __future__ import annotations

__all__ = ["base", "latest_requests"]


def base(root: str, namespace: str, deployment: str) -> str:
    from ctloop import artifacts

    return artifacts.join(root, "serving", namespace or "default", deployment or "unknown")


def latest_requests(root: str, namespace: str, deployment: str) -> str | None:
    """The folder of the newest day of requests the watcher wrote for this deployment; None when it wrote none."""
    from ctloop import artifacts

    prefix = artifacts.join(base(root, namespace, deployment), "requests")
    days = {uri[len(prefix) :].lstrip("/").split("/", 1)[0] for uri in artifacts.list_uris(prefix)}
    days = sorted(d for d in days if d.startswith("date="))
    return artifacts.join(prefix, days[-1]) if days else None
