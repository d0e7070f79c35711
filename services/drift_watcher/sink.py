"""What the watcher keeps of production traffic, as Parquet in the artifact store, where
``ctloop.contracts.serving_data`` says.

``requests`` is the serving data for skew checks; ``labelled`` has the training columns (features, label,
timestamp, id). A retrain gets a frozen copy of it (``spans/<key>``): the pipeline checks that its input does not
change between validation and training, and ``labelled`` keeps growing. Files are named by window number, so
writing one twice (a journal replayed after a crash) replaces it with the same rows.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pandas as pd

from ctloop import artifacts
from ctloop.contracts import serving_data


class ServingData:
    def __init__(self, root: str, namespace: str, deployment: str):
        self.base = serving_data.base(root, namespace, deployment)

    @property
    def labelled_uri(self) -> str:
        return artifacts.join(self.base, "labelled")

    @staticmethod
    def _write(uri: str, rows: list[dict]) -> str:
        buffer = io.BytesIO()
        pd.DataFrame.from_records(rows).to_parquet(buffer, index=False)
        artifacts.write_bytes(uri, buffer.getvalue())
        return uri

    def write_requests(self, window: int, rows: list[dict], started: float) -> str:
        day = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%d")
        return self._write(artifacts.join(self.base, "requests", f"date={day}", f"window-{window:08d}.parquet"), rows)

    def write_labelled(self, window: int, rows: list[dict]) -> str:
        return self._write(artifacts.join(self.labelled_uri, f"part-{window:08d}.parquet"), rows)

    def freeze_labelled(self, key: str) -> str:
        """Copy the labelled parts written so far into a folder of their own; returns its URI."""
        target = artifacts.join(self.base, "spans", key)
        for uri in artifacts.list_uris(self.labelled_uri):
            artifacts.write_bytes(artifacts.join(target, uri.rsplit("/", 1)[-1]), artifacts.read_bytes(uri))
        return target
