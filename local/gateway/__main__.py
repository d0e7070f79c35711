"""Entry program of the local gateway (control image).

python -m ctloop.local.gateway --deployments DIR --venvs DIR [--host 127.0.0.1] [--port 8000]
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ctloop.local.gateway.app import Gateway
from ctloop.local.gateway.predictors import Pool, seldon_launcher
from ctloop.services.http_server import serve


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="gateway", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--deployments", required=True, help="Folder of SeldonDeployment YAML files (<namespace>/<name>.yaml)."
    )
    p.add_argument("--venvs", required=True, help="The per-image environments; predictors run in <venvs>/serve.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    root = Path(args.deployments)
    gateway = Gateway(root, Pool(seldon_launcher(Path(args.venvs)), root.parent / "predictors"))
    serve(gateway.app(), args.host, args.port)


if __name__ == "__main__":
    main()
