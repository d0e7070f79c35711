"""Where the drift watcher keeps production traffic in the artifact store (a path, file:// or s3://), and where
validate_data finds it to measure skew:

    <root>/serving/<namespace>/<deployment>/requests/date=<day>/window-<n>.parquet   every request, with its answer
    <root>/serving/<namespace>/<deployment>/labelled/part-<n>.parquet               rows whose truth came back
    <root>/serving/<namespace>/<deployment>/spans/<trigger key>/part-<n>.parquet    frozen copy for one retrain
"""

from __future__ import annotations

__all__ = ["base", "days", "requests"]


def base(root: str, namespace: str, deployment: str) -> str:
    from ctloop import artifacts

    return artifacts.join(root, "serving", namespace or "default", deployment or "unknown")


def days(uri: str) -> dict[str, str]:
    """The ``date=<day>`` folders under ``uri``, oldest first: day ("2026-11-30") -> folder; empty where it has
    none (a folder of request files itself)."""
    from ctloop import artifacts

    prefix = uri.rstrip("/")
    names = {found[len(prefix) :].lstrip("/").split("/", 1)[0] for found in artifacts.list_uris(prefix)}
    return {name[len("date=") :]: artifacts.join(prefix, name) for name in sorted(names) if name.startswith("date=")}


def requests(root: str, namespace: str, deployment: str) -> str | None:
    """The folder of the days of requests the watcher wrote for this deployment; None when it wrote none."""
    from ctloop import artifacts

    folder = artifacts.join(base(root, namespace, deployment), "requests")
    return folder if days(folder) else None
