"""Entry program of the validate_segments step (train image).

    python -m ctloop.components.validate_segments --test-split URI --model DIR (--config FILE | --config-yaml TEXT)
        [--champion-model DIR | --no-champion] [--accept-label-change] [--out DIR] [--blessing-out FILE ...]
        [--executor-output FILE]

The champion comes from the registry's `champion` alias unless given; its own validation record is read from the
blessing beside its model folder (``<run artifacts>/validation/blessing.json``). Exit status: 0 judged (blessed or
not: the verdict is the blessing, and the pipeline branches on `blessed`, so the last line names the reason);
1 the registry failed; 2 bad input.
"""

from __future__ import annotations

import json
import sys

from ctloop import artifacts, kfp_outputs
from ctloop.components.validate_segments import executor, spec
from ctloop.contracts import registry
from ctloop.entrypoint import load_settings
from ctloop.errors import CtloopError


def parse_args(argv):
    p = spec.COMPONENT.parser()
    champion = p.add_mutually_exclusive_group()
    champion.add_argument("--champion-model", help="A champion model folder, instead of the registry's alias.")
    champion.add_argument("--no-champion", action="store_true", help="Judge without a champion comparison.")
    p.add_argument(
        "--accept-label-change",
        action="store_true",
        help="Let a collapsed champion pass deliberately (gates.segments.accept_label_change: true).",
    )
    return p.parse_args(argv)


def reason(blessing: dict) -> str:
    """One line: how many checks failed, and the first of them (sanity checks come first) with its detail."""
    failed = blessing["failed"]
    if not failed:
        return "not blessed"
    first = failed[0]
    where = f"{first['segment']}={first['value']}" if first.get("segment") else ""
    named = " ".join(part for part in (first["check"], where, first.get("metric", "")) if part)
    return f"not blessed ({len(failed)} failed checks; first: {named}: {first.get('detail', '')})"


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
        if args.accept_label_change:
            settings.gates.segments.accept_label_change = True
        if args.no_champion:
            champion = executor.Champion(None, None, "no champion: --no-champion")
        elif args.champion_model:
            champion = executor.champion_at(args.champion_model, args.champion_model)
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
    verdict = "blessed" if result.blessed else reason(result.blessing)
    if result.blessing.get("overrides"):
        verdict += f" (overridden deliberately: {', '.join(result.blessing['overrides'])})"
    print(f"validate_segments: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
