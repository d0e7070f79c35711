"""Connecting to the MLflow tracking server named in ctloop.yaml, failing fast when it is not there.

MLflow's client retries a dead server for minutes with backoff; a pipeline step should say in seconds that the
registry is unreachable, naming it.
"""

from __future__ import annotations

import os
from urllib.error import URLError
from urllib.request import urlopen

from ctloop.errors import NotReadyError


def connect(settings, timeout: float = 10.0):
    """Point mlflow at the configured server after checking it answers; returns an MlflowClient."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = settings.endpoints.mlflow.tracking_uri
    if uri.startswith(("http://", "https://")):
        try:
            with urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
                ok = response.status == 200
        except (URLError, OSError):
            ok = False
        if not ok:
            raise NotReadyError(f"the MLflow tracking server at {uri} is unreachable (endpoints.mlflow.tracking_uri)")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    mlflow.set_tracking_uri(uri)
    return MlflowClient(tracking_uri=uri)
