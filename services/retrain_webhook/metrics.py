"""The webhook's Prometheus metrics, built from ctloop.metric_names so that their names cannot drift from the
alert rules and dashboards tested against that list."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ctloop.metric_names import METRICS

_KINDS = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        built = {}
        for m in METRICS:
            if m.exporter != "retrain_webhook":
                continue
            extra = {"buckets": m.buckets} if m.kind == "histogram" and m.buckets else {}
            built[m.name] = _KINDS[m.kind](m.name, m.help, m.labels, registry=self.registry, **extra)
        self.requests = built["ctloop_webhook_requests_total"]
        self.auth_failures = built["ctloop_webhook_auth_failures_total"]
        self.decisions = built["ctloop_webhook_decisions_total"]
        self.queue_depth = built["ctloop_webhook_queue_depth"]
        self.launches = built["ctloop_webhook_launches_total"]
        self.pipeline_runs = built["ctloop_pipeline_runs_total"]
