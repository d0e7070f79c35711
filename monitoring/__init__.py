"""The alert and recording rules (``rules/``, with their promtool unit tests in ``tests/``) and the Grafana
dashboards (``dashboards/``): the chart ships them (``helm/ctloop/files`` links here) and the local stack's
Prometheus loads the rules from the installed package (``RULES``)."""

from __future__ import annotations

from importlib.resources import files

RULES = files(__name__) / "rules" / "ctloop.rules.yaml"
DASHBOARDS = files(__name__) / "dashboards"
