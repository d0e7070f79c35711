"""Entry program of the validate_segments step (train image).

    python -m ctloop.components.validate_segments --test-split URI --model DIR (--config FILE | --config-yaml TEXT)
        [--champion-model DIR | --no-champion] [--out DIR] [--blessing-out FILE ...] [--executor-output FILE]

The champion comes from the registry's `champion` alias unless given. Exit status: 0 judged (blessed or
not: the verdict is the blessing, and the pipeline branches on `blessed`); 1 the registry failed; 2 bad input.
"""

from __future__ import annotations

import json
import sys

from ctloop import artifacts, kfp_outputs, model_format
from ctloop.components.validate_segments import executor, spec
from ctloop.contracts import registry
from ctloop.entrypoint import load_settings
from ctloop.errors import CtloopError


def parse_args(argv):
    p = spec.COMPONENT.parser()
    champion = p.add_mutually_exclusive_group()
    champion.add_argument("--champion-model", help="A champion model folder, instead of the registry's alias.")
    champion.add_argument("--no-champion", action="store_true", help="Judge without a champion comparison.")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
        if args.no_champion:
            champion = executor.Champion(None, None, "no champion: --no-champion")
        elif args.champion_model:
            champion = executor.Champion(model_format.load(args.champion_model), args.champion_model, "")
        else:
            champion = executor.champion_from_registry(registry.connect(settings, timeout=10))
        result = executor.run(args.test_split, args.model, settings, champion)
        outputs = result.outputs()
        for name, path in spec.COMPONENT.output_paths(args).items():
            artifacts.write_bytes(path, outputs[name])
        if args.executor_output:
            reported = json.loads(outputs[spec.METRICS])
            kfp_outputs.write(args.executor_output, {spec.METRICS: (args.metrics_uri, reported)})
    except CtloopError as e:
        print(f"validate_segments: {e}", file=sys.stderr)
        return e.exit_code
    print(outputs[spec.REPORT_MD].decode())
    verdict = "blessed" if result.blessed else f"not blessed ({len(result.blessing['failed'])} failed checks)"
    print(f"validate_segments: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
