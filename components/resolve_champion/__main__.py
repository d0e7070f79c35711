"""Entry program of resolve_champion (train image): the artifacts register logged with the champion, as URIs.

    python -m ctloop.components.resolve_champion (--config FILE | --config-yaml TEXT) [--out DIR]
        [--champion-version-out FILE ...]

A registry without a champion is an outcome (every output empty), not an error: the first span is judged on its
own. An artifact the champion was registered without (before ctloop logged it) is empty too, and validate_data
says what it could not compare. Exit status: 0 resolved; 1 the registry failed; 2 bad input.
"""

from __future__ import annotations

import sys

from ctloop import artifacts
from ctloop.components.resolve_champion import spec
from ctloop.contracts import registry, serving_data
from ctloop.entrypoint import load_settings
from ctloop.errors import CtloopError

ARTIFACTS = {
    spec.CHAMPION_SCHEMA_URI: "schema",
    spec.CHAMPION_STATISTICS_URI: "statistics",
    spec.CHAMPION_VERDICT_URI: "data_verdict",
}


def resolve(found: registry.Registry, settings) -> dict[str, str]:
    values = dict.fromkeys([spec.CHAMPION_VERSION, *ARTIFACTS], "")
    # Serving data is there whether or not a champion is: a model may serve before it is promoted.
    where = (settings.endpoints.artifact_store.root, settings.endpoints.seldon.namespace, settings.name)
    values[spec.SERVING_DATA_URI] = serving_data.requests(*where) or ""
    version = found.champion()
    if version is None:
        return values
    values[spec.CHAMPION_VERSION] = version
    for output, name in ARTIFACTS.items():
        uri = found.artifact_uri(version, name)
        values[output] = uri if uri and artifacts.exists(uri) else ""
    return values


def parse_args(argv):
    return spec.COMPONENT.parser().parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        settings = load_settings(args)
        values = resolve(registry.connect(settings, timeout=10), settings)
        for name, path in spec.COMPONENT.output_paths(args).items():
            artifacts.write_bytes(path, values[name].encode())
    except CtloopError as e:
        print(f"resolve_champion: {e}", file=sys.stderr)
        return e.exit_code
    if not values[spec.CHAMPION_VERSION]:
        print(
            f"resolve_champion: {settings.endpoints.mlflow.registered_model} has no champion: the span is judged alone"
        )
        return 0
    missing = [ARTIFACTS[k] for k in ARTIFACTS if not values[k]]
    print(f"resolve_champion: champion v{values[spec.CHAMPION_VERSION]}"
          + (f"; registered without {', '.join(missing)}" if missing else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
