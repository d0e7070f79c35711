"""The drift watcher: Seldon's request-logger CloudEvents in, Parquet serving data and drift statistics out, and
a signed retrain request to the webhook when drift is confirmed (docs/drift_watcher.md)."""
