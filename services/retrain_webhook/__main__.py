"""Entry program of the retrain webhook (control image).

python -m ctloop.services.retrain_webhook --config PATH [--host H] [--port P] [--state DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ctloop import config
from ctloop.errors import CtloopError
from ctloop.services.http_server import serve
from ctloop.services.retrain_webhook.app import build


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="retrain_webhook", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="ctloop.yaml.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="Default: local.webhook_port.")
    p.add_argument("--state", default=None, help="Queue, audit log and run logs (default: <local.state_dir>/webhook).")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = config.load(args.config)
        state = Path(args.state) if args.state else Path(settings.local.state_dir) / "webhook"
        webhook = build(settings, args.config, state)
    except CtloopError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    port = args.port if args.port is not None else settings.local.webhook_port
    serve(webhook.app(), args.host, port)


if __name__ == "__main__":
    main()
