"""The reference data: the training sample registered with the champion (the ``reference/`` artifact of its run,
written by the train component: stratified training rows with the model's score).

Samples are cached under ``<state>/reference/<version>.parquet``, so that a restart replays its journal against the
very sample each window was judged by, without asking the registry.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import tempfile
from pathlib import Path

import pandas as pd

from ctloop.contracts import registry
from ctloop.contracts.registry import CHAMPION
from ctloop.errors import NotFoundError

log = logging.getLogger(__name__)


class ReferenceStore:
    def __init__(self, folder: Path, settings):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self._frames: dict[str, pd.DataFrame] = {}

    def path(self, version: str) -> Path:
        return self.folder / f"{version}.parquet"

    def load(self, version: str) -> pd.DataFrame:
        if version not in self._frames:
            path = self.path(version)
            if not path.exists():
                raise NotFoundError(f"reference sample of version {version} is not cached at {path}")
            self._frames[version] = pd.read_parquet(path)
        return self._frames[version]

    def cached_online(self, version: str, build):
        """Online detectors configured for ``version``, from the cache when their settings are unchanged (the
        threshold simulation takes seconds to a minute). The cache is this service's own state folder."""
        policy = self.settings.drift
        key = "-".join(
            str(v)
            for v in (
                policy.online_expected_run_time,
                policy.online_bootstraps,
                policy.min_window_size,
                policy.min_category_share,
            )
        )
        path = self.folder / f"{version}.online-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pickle"
        if path.exists():
            return pickle.loads(path.read_bytes())
        detectors = build()
        staging = path.with_suffix(".tmp")
        staging.write_bytes(pickle.dumps(detectors))
        staging.replace(path)
        return detectors

    def champion_version(self) -> str | None:
        """The version the ``champion`` alias points at, or None when there is no champion yet."""
        found = registry.connect(self.settings)
        version = found.by_alias(CHAMPION)
        if version is None:
            return None
        if not self.path(version.version).exists():
            self._fetch(found.client, version)
        return str(version.version)

    def _fetch(self, client, version) -> None:
        with tempfile.TemporaryDirectory(prefix="ctloop-reference-") as tmp:
            local = Path(client.download_artifacts(version.run_id, "reference", tmp))
            # The pipeline logs its artifact under KFP's output name (no suffix): go by content, not by name.
            candidates = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local]
            files = [p for p in candidates if p.read_bytes()[:4] == b"PAR1"]
            if not files:
                raise NotFoundError(f"version {version.version} (run {version.run_id}) has no Parquet under reference/")
            frame = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        staging = self.path(version.version).with_suffix(".tmp")
        frame.to_parquet(staging, index=False)
        staging.replace(self.path(version.version))
        log.info("reference sample of version %s: %d rows", version.version, len(frame))
