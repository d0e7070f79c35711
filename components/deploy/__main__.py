"""Entry program of the deploy step (control image).

    python -m ctloop.components.deploy (--config FILE | --config-yaml TEXT) --model-version V --model-uri URI
        [--state DIR] [--action-out FILE]

Exit status: 0 deployed (declared, first deployment, or already serving); 1 not blessed, or the registry or the
deployment target failed; 2 bad input.
"""

from __future__ import annotations

import sys

from ctloop import artifacts, deployment_target
from ctloop.components.deploy import executor, spec
from ctloop.contracts import registry
from ctloop.entrypoint import load_settings
from ctloop.errors import CtloopError


def parse_args(argv):
    p = spec.COMPONENT.parser()
    p.add_argument("--state", help="Local mode: the local stack's state folder (default: local.state_dir).")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
        target = deployment_target.connect(settings, args.state)
        done = executor.deploy(settings, target, registry.connect(settings), args.model_version.strip(),
                               args.model_uri.strip())  # fmt: skip
        for path in spec.COMPONENT.output_paths(args).values():
            artifacts.write_bytes(path, done.action.encode())
    except CtloopError as e:
        print(f"deploy: {e}", file=sys.stderr)
        return e.exit_code
    print(f"deploy: version {args.model_version} -> {done.namespace}/{done.name} {done.predictor} ({done.action})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
