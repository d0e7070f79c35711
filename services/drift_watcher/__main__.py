"""Entry program of the drift watcher (watch image).

python -m ctloop.services.drift_watcher --config ctloop.yaml [--host 0.0.0.0] [--port 8080] [--state DIR]

The webhook's HMAC secret comes from the environment variable named by webhook.secret_env, the token POST /v1/events
requires from the one named by endpoints.watcher.token_env; it refuses to start without either.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ctloop.contracts import ingestion, signing
from ctloop.entrypoint import settings_from_file
from ctloop.errors import CtloopError
from ctloop.services.drift_watcher.app import Service
from ctloop.services.http_server import serve


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="drift_watcher", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="ctloop.yaml")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--state", help="Journal, snapshots and reference cache (default: <local.state_dir>/watcher).")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_file(args.config)
        secret = signing.read_secret(settings.webhook.secret_env)
        token = ingestion.read(settings.endpoints.watcher.token_env)
    except CtloopError as e:
        print(f"drift_watcher: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    state = Path(args.state or Path(settings.local.state_dir) / "watcher")
    service = Service(settings, state, secret, token)
    serve(service.app(), args.host, args.port)


if __name__ == "__main__":
    main()
