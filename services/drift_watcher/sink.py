"""What the watcher keeps of production traffic, as Parquet in the artifact store, where
``ctloop.contracts.serving_data`` says.

``requests`` is the serving data for skew checks; ``labelled`` has the training columns (features, label,
timestamp, id). A retrain gets a frozen copy of it (``spans/<key>``): the pipeline checks that its input does not
change between validation and training, and ``labelled`` keeps growing. Files are named by window number, so
writing one twice (a journal replayed after a crash) replaces it with the same rows.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pandas as pd

from ctloop import artifacts
from ctloop.contracts import serving_data

_PART = re.compile(r"part-(\d+)\.parquet")


def part_name(window: int) -> str:
    """The labelled rows of ``window``; ``part_window`` reads the number back (None for other files)."""
    return f"part-{window:08d}.parquet"


def part_window(name: str) -> int | None:
    found = _PART.fullmatch(name)
    return int(found.group(1)) if found else None


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
        return self._write(artifacts.join(self.labelled_uri, part_name(window)), rows)

    def frozen_uri(self, key: str) -> str:
        return artifacts.join(self.base, "spans", key)

    def freeze_labelled(self, key: str, up_to_window: int) -> int:
        """Copy the labelled parts of the windows up to ``up_to_window`` into a folder of their own
        (``frozen_uri``); returns how many. Copying again copies the same parts, so a retry after a failure or a
        restart freezes the same rows."""
        target, copied = self.frozen_uri(key), 0
        for uri in artifacts.list_uris(self.labelled_uri):
            name = uri.rsplit("/", 1)[-1]
            window = part_window(name)
            if window is not None and window <= up_to_window:
                artifacts.write_bytes(artifacts.join(target, name), artifacts.read_bytes(uri))
                copied += 1
        return copied
