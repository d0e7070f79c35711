"""Entry program of the rollout controller (control image).

python -m ctloop.services.rollout_controller --config PATH [--host H] [--port P] [--state DIR]

--state: the local stack's state folder (the local deployment target reads <state>/gateway/deployments);
default: local.state_dir. In the kubernetes mode the target is the Kubernetes API (in-cluster credentials).
"""

from __future__ import annotations

import argparse
import logging
import sys

from ctloop import deployment_target
from ctloop.contracts import registry
from ctloop.entrypoint import settings_from_file
from ctloop.errors import CtloopError
from ctloop.services.http_server import serve
from ctloop.services.rollout_controller import app, checks
from ctloop.services.rollout_controller.controller import Controller


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="rollout_controller", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="Path of ctloop.yaml.")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--state", help="State folder of the local stack (local mode).")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_file(args.config)
        target = deployment_target.connect(settings, args.state)
    except CtloopError as e:
        print(f"rollout_controller: {e}", file=sys.stderr)
        return e.exit_code
    controller = Controller(settings, target, checks.PrometheusSource(settings.endpoints.prometheus.url),
                            lambda: registry.connect(settings))  # fmt: skip
    serve(app.build(controller), args.host, args.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
