"""`ctloop schema show` and `ctloop schema pin`: the schema validate_data checks spans against, where it comes
from (a pinned file, the champion's registered schema, or one inferred from a span), what it says, and pinning it.

TFDV's protos live only in the validate environment, so a text schema is read there (by a few lines of Python,
``_READ``) and comes back as the JSON validate_data writes beside it (``schema.json``): the CLI reads only JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ctloop import artifacts
from ctloop.components.validate_data import spec
from ctloop.config import Settings
from ctloop.errors import BadInputError, CtloopError, NotFoundError, NotReadyError
from ctloop.local import environments

# stdin: a Schema as text proto (or JSON); stdout: {"text", "json"}; exit 2 with the parser's message otherwise.
_READ = """
import json, sys
from google.protobuf import json_format, text_format
from tensorflow_metadata.proto.v0 import schema_pb2
text = sys.stdin.read()
schema = schema_pb2.Schema()
try:
    if text.lstrip().startswith("{"):
        json_format.Parse(text, schema)
        text = text_format.MessageToString(schema)
    else:
        text_format.Parse(text, schema)
except (json_format.ParseError, text_format.ParseError) as e:
    print(str(e).splitlines()[0], file=sys.stderr)
    sys.exit(2)
print(json.dumps({"text": text, "json": json_format.MessageToDict(schema)}))
"""

DOMAIN_VALUES = 6  # string values shown before the rest are counted


@dataclass
class Schema:
    text: str  # text proto, what a pinned file holds
    data: dict  # the same as JSON, protobuf's field names (schema.json)
    source: str  # where it came from, one line


def read(settings: Settings, content: bytes, name: str, source: str) -> Schema:
    """A schema from the bytes of a text proto (or its JSON); ``name`` is what an error calls them."""
    try:
        text = content.decode()
    except UnicodeDecodeError:
        raise BadInputError(f"{name}: not a schema (not UTF-8 text)") from None
    python = environments.python_for(settings, "validate")
    done = subprocess.run([str(python), "-c", _READ], input=text, capture_output=True, text=True)
    if done.returncode == 2:
        raise BadInputError(f"{name}: not a TFDV schema (text proto or JSON): {done.stderr.strip()}")
    if done.returncode != 0:
        raise CtloopError(f"reading {name} in the validate environment failed: {done.stderr.strip()[-500:]}")
    answer = json.loads(done.stdout)
    if not answer["json"].get("feature"):
        raise BadInputError(f"{name}: not a schema (it describes no feature)")
    return Schema(answer["text"], answer["json"], source)


def from_file(settings: Settings, uri: str, source: str) -> Schema:
    return read(settings, artifacts.read_bytes(uri), uri, source)


def from_champion(settings: Settings) -> Schema:
    """The schema registered with the champion (where resolve_champion finds it for validate_data)."""
    from ctloop.contracts import registry

    found = registry.connect(settings)
    version = found.champion()
    if version is None:
        raise NotFoundError(f"{found.name} has no champion at {settings.endpoints.mlflow.tracking_uri}")
    uri = found.artifact_uri(version, "schema")
    if not uri or not artifacts.exists(uri):
        raise NotFoundError(f"the champion, {found.name} version {version}, was registered without a schema ({uri})")
    return read(settings, artifacts.read_bytes(uri), uri,
                f"the champion's registered schema: {found.name} version {version} ({uri})")  # fmt: skip


def inferred(settings: Settings, data_uri: str) -> Schema:
    """The schema validate_data infers from ``data_uri`` and curates with the settings, by its own entry program
    in the validate environment; a span with anomalies still has one."""
    python = environments.python_for(settings, "validate")
    unpinned = settings.copy(deep=True)
    unpinned.data.schema_uri = None  # inferring is the point, even when a schema is pinned
    # The settings are resolved, so the child must not apply the CTLOOP_* overrides a second time.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTLOOP_")}
    with tempfile.TemporaryDirectory(prefix="ctloop-schema-") as out:
        argv = [str(python), "-m", "ctloop.components.validate_data", "--config-yaml", unpinned.json(),
                "--data", data_uri, "--out", out]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, env=env)
        if done.returncode not in (spec.EXIT_OK, spec.EXIT_ANOMALIES):
            lines = [line for line in done.stderr.splitlines() if line.startswith("validate_data:")]
            why = lines[-1].removeprefix("validate_data: ") if lines else done.stderr.strip()[-500:]
            raise BadInputError(f"no schema inferred from {data_uri}: {why}")
        files = spec.OUTPUT_FILES
        text = (Path(out) / files[spec.SCHEMA]).read_text()
        data = json.loads((Path(out) / files[spec.SCHEMA_JSON]).read_text())
    verdict = "" if done.returncode == spec.EXIT_OK else "; the span has ERROR anomalies (`ctloop validate` lists them)"
    return Schema(text, data, f"inferred from {data_uri} and curated by the settings, not pinned{verdict}")


def find(settings: Settings, data: str | None, champion: bool, file: str | None, note) -> Schema:
    """The schema the options name; none named: the pinned one, else the champion's, else one inferred from
    data.uri. ``note`` hears why a source was passed over."""
    if sum((data is not None, champion, file is not None)) > 1:
        raise BadInputError("give at most one of --data, --champion and --file")
    if file:
        return from_file(settings, file, f"file {file}")
    if champion:
        return from_champion(settings)
    if data:
        return inferred(settings, data)
    if settings.data.schema_uri:
        return from_file(settings, settings.data.schema_uri, f"pinned: {settings.data.schema_uri} (data.schema_uri)")
    try:
        return from_champion(settings)
    except (NotFoundError, NotReadyError) as e:
        passed_over = str(e)
    note(f"no champion schema ({passed_over}): inferring one from {settings.data.uri} (data.uri)")
    try:
        return inferred(settings, settings.data.uri)
    except BadInputError as e:
        raise BadInputError(f"no schema: no pinned one (data.schema_uri), no champion's ({passed_over}), {e}") from None


# ---------------------------------------------------------------------------------------------------------------
# What a person reads


def _number(value) -> str:
    return f"{float(value):g}"


def _domain(feature: dict, named: dict[str, list[str]]) -> str:
    values = feature.get("stringDomain", {}).get("value")
    if values is None and "domain" in feature:
        values = named.get(feature["domain"], [])
    if values is not None:
        shown = ", ".join(values[:DOMAIN_VALUES])
        return shown + (f", ... (+{len(values) - DOMAIN_VALUES})" if len(values) > DOMAIN_VALUES else "")
    for key in ("intDomain", "floatDomain"):
        if key in feature:
            bounds = feature[key]
            if key == "intDomain" and bounds.get("isCategorical"):
                return "categorical integers"
            lo = _number(bounds["min"]) if "min" in bounds else "-inf"
            hi = _number(bounds["max"]) if "max" in bounds else "inf"
            return f"[{lo}, {hi}]"
    return "-"


def _drift(feature: dict) -> str:
    comparator = feature.get("driftComparator", {})
    for key, name in (("jensenShannonDivergence", "JSD"), ("infinityNorm", "L-inf")):
        if key in comparator:
            return f"{name} {_number(comparator[key].get('threshold', 0))}"
    return "-"


def rows(schema: Schema) -> list[tuple[str, str, str, str, str]]:
    """Per feature: name, type, presence (min_fraction), domain, drift threshold."""
    named = {d["name"]: d.get("value", []) for d in schema.data.get("stringDomain", [])}
    out = []
    for feature in schema.data.get("feature", []):
        presence = feature.get("presence")
        fraction = _number(presence.get("minFraction", 0)) if presence is not None else "-"
        out.append((feature["name"], feature.get("type", "TYPE_UNKNOWN"), fraction, _domain(feature, named),
                    _drift(feature)))  # fmt: skip
    return out


# ---------------------------------------------------------------------------------------------------------------
# Pinning


def pin(schema: Schema, out: Path, force: bool) -> bool:
    """Write the text schema to ``out``; False when it already holds it. A different file stays unless ``force``."""
    if out.is_dir():
        raise BadInputError(f"--out {out}: is a folder")
    if out.exists():
        if out.read_text(errors="replace") == schema.text:
            return False
        if not force:
            raise BadInputError(f"{out} exists and holds a different schema: --force replaces it")
    artifacts.write_bytes(str(out), schema.text.encode())
    return True


def config_line(settings: Settings, config_path: str, out: Path) -> str | None:
    """The line to add to the settings file so that it pins ``out``; None when it already does."""
    if settings.data.schema_uri and Path(settings.data.schema_uri).resolve() == out.resolve():
        return None
    folder = Path(config_path).resolve().parent
    target = out.resolve()
    named = target.relative_to(folder) if target.is_relative_to(folder) else target
    return f"data: {{schema_uri: {named}}}"
