"""Entry program of the validate_segments step (train image).

    python -m ctloop.components.validate_segments --test-split URI --model DIR (--config FILE | --config-yaml TEXT)
        [--champion-model DIR | --no-champion] [--out DIR] [--blessing-out FILE ...] [--executor-output FILE]

The champion comes from the registry's `champion` alias unless given. Exit status: 0 judged (blessed or
not: the verdict is the blessing, and the pipeline branches on `blessed`); 1 the registry failed; 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys

from ctloop import artifacts, kfp_outputs, mlflow_client, model_format
from ctloop.components.validate_segments import executor, spec
from ctloop.entrypoint import add_config_arguments, load_settings
from ctloop.errors import CtloopError


def parse_args(argv):
    p = argparse.ArgumentParser(prog="validate_segments", description=__doc__.split("\n\n")[0])
    add_config_arguments(p)
    p.add_argument("--test-split", required=True, help="The held-out rows from train (Parquet).")
    p.add_argument("--model", required=True, help="The candidate's model folder.")
    champion = p.add_mutually_exclusive_group()
    champion.add_argument("--champion-model", help="A champion model folder, instead of the registry's alias.")
    champion.add_argument("--no-champion", action="store_true", help="Judge without a champion comparison.")
    p.add_argument("--out", help="Folder for every output not given its own path.")
    for name in spec.FILES:
        p.add_argument(f"--{name.replace('_', '-')}-out", dest=f"{name}_out")
    p.add_argument("--executor-output", help="KFP's {{$.outputs.output_file}}: Metrics for the UI.")
    p.add_argument("--metrics-uri", default="", help="KFP URI of the metrics artifact.")
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
            client = mlflow_client.connect(settings)
            champion = executor.champion_from_registry(client, settings.endpoints.mlflow.registered_model)
        result = executor.run(args.test_split, args.model, settings, champion)
        outputs = result.outputs()
        for name, filename in spec.FILES.items():
            path = getattr(args, f"{name}_out") or (artifacts.join(args.out, filename) if args.out else None)
            if path:
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
