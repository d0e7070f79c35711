"""The retrain webhook (control image): turns signed retrain requests and Alertmanager notifications into pipeline
runs, deduplicated, rate-limited by a cooldown, queued durably in SQLite and launched through the pipeline launcher.

The request bodies are the retrain request (``ctloop.contracts.retrain``) and Alertmanager's payload (``schemas``).
Modules: ``store`` (the durable queue, idempotency keys and cooldown), ``launchers`` (the pipeline-launcher
adapter: KFP or the local runner), ``worker`` (launches with retries, follows runs to the end), ``audit`` (JSON
lines of every decision), ``metrics``, ``app`` (the HTTP side), ``__main__``.
"""
