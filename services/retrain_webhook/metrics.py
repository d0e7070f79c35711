"""The webhook's Prometheus metrics, built from ctloop.metric_names so that their names cannot drift from the
alert rules and dashboards tested against that list."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from ctloop import metric_names


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        built = metric_names.build("retrain_webhook", self.registry)
        self.requests = built["ctloop_webhook_requests_total"]
        self.auth_failures = built["ctloop_webhook_auth_failures_total"]
        self.decisions = built["ctloop_webhook_decisions_total"]
        self.queue_depth = built["ctloop_webhook_queue_depth"]
        self.launches = built["ctloop_webhook_launches_total"]
        self.pipeline_runs = built["ctloop_pipeline_runs_total"]
