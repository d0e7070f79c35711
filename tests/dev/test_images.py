"""Static checks of the role images: their Dockerfiles and the hashed locks they install.

No Docker engine is needed: the Dockerfiles are parsed line by line. Each image installs exactly
images/<name>/requirements.lock; the local environment .venvs/<name> installs images/<name>/local.lock,
which must carry the same pins (plus the test tools).
"""

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = ROOT / "images"
IMAGES = ["validate", "train", "serve", "control", "watch"]
ENVS = [*IMAGES, "dev"]

BASE_IMAGE = re.compile(r"^python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
NUMERIC_USER = re.compile(r"^(\d+)(?::(\d+))?$")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)\s*(;.*)?$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM it follows


def parse_dockerfile(path: Path) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped (Dockerfile rules)."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # comments may sit between continuation lines too
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        line = (pending + line).strip()
        pending = ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    assert not pending, f"{path}: dangling line continuation"
    return instructions


def env_assignments(instructions: list[Instruction], stage: int) -> dict[str, str]:
    """ENV key=value pairs set in one stage (the legacy `ENV key value` form included)."""
    values: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword != "ENV" or instruction.stage != stage:
            continue
        if "=" not in instruction.args.split(" ", 1)[0]:
            key, _, value = instruction.args.partition(" ")
            values[key] = value.strip()
            continue
        for key, value in re.findall(r'([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)', instruction.args):
            values[key] = value.strip('"')
    return values


def from_images(instructions: list[Instruction]) -> list[str]:
    """The external images named by FROM (references to earlier stages left out)."""
    stages: set[str] = set()
    images = []
    for instruction in instructions:
        if instruction.keyword != "FROM":
            continue
        words = [word for word in instruction.args.split() if not word.startswith("--platform")]
        image = words[0]
        if len(words) >= 3 and words[1].upper() == "AS":
            stages.add(words[2].lower())
        if image.lower() not in stages:
            images.append(image)
    return images


def parse_lock(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """{normalized name: (version, hashes)} of a `uv pip compile --generate-hashes` lock."""
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    logical = ""
    lines = [line.split(" #", 1)[0].rstrip() for line in path.read_text().splitlines()]
    for line in [*lines, ""]:
        stripped = line.strip()
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1].strip() + " "
            continue
        logical = (logical + stripped).strip()
        if logical:
            requirement, *options = re.split(r"\s+(?=--)", logical)
            match = PIN.match(requirement)
            assert match, f"{path.name}: not an exact name==version pin: {requirement!r}"
            name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
            assert name not in entries, f"{path.name}: {name} pinned twice"
            bad = [option for option in options if not HASH.match(option)]
            assert not bad, f"{path.name}: {name}: unexpected options {bad}"
            entries[name] = (match.group(3), frozenset(options))
        logical = ""
    return entries


@pytest.fixture(scope="module", params=IMAGES)
def image(request):
    path = IMAGES_DIR / request.param / "Dockerfile"
    assert path.is_file(), f"missing {path.relative_to(ROOT)}"
    return request.param, parse_dockerfile(path)


def test_base_image_is_a_tagged_python_3_11_slim(image):
    name, instructions = image
    images = from_images(instructions)
    assert images, f"{name}: no FROM"
    for base in images:
        assert BASE_IMAGE.match(base), f"{name}: base image {base!r} is not python:3.11[.x]-slim[-dist]"
        assert ":latest" not in base
    for instruction in instructions:
        assert not re.search(r":latest\b", instruction.args), f"{name}: 'latest' in {instruction}"


def test_runs_as_a_numeric_non_root_user(image):
    name, instructions = image
    users = [instruction for instruction in instructions if instruction.keyword == "USER"]
    assert users, f"{name}: no USER instruction, the image would run as root"
    last = users[-1]
    final_stage = max(instruction.stage for instruction in instructions)
    assert last.stage == final_stage, f"{name}: the last USER is not in the final stage"
    match = NUMERIC_USER.match(last.args)
    assert match, f"{name}: USER {last.args!r} is not numeric (runAsNonRoot needs a numeric uid)"
    assert int(match.group(1)) != 0, f"{name}: USER is root"
    assert match.group(2) is None or int(match.group(2)) != 0, f"{name}: group is root"


def test_installs_its_own_lock_with_hashes(image):
    name, instructions = image
    lock = f"images/{name}/requirements.lock"
    installs = [
        instruction.args
        for instruction in instructions
        if instruction.keyword == "RUN" and re.search(r"\bpip\b.*\binstall\b", instruction.args)
    ]
    locked = [command for command in installs if re.search(rf"(-r|--requirement)[ =]\S*{re.escape(lock)}\b", command)]
    assert locked, f"{name}: no `pip install -r {lock}`"
    for command in locked:
        assert "--require-hashes" in command, f"{name}: lock installed without --require-hashes"
        assert "--no-deps" in command, f"{name}: lock installed without --no-deps"
    for other in ENVS:
        if other != name:
            assert all(f"images/{other}/" not in command for command in installs), f"{name} installs {other}'s lock"
    copied = [
        instruction.args
        for instruction in instructions
        if instruction.keyword in {"COPY", "ADD"} and lock in instruction.args
    ]
    assert copied, f"{name}: {lock} is never copied into the build"


def test_copy_sources_exist_in_the_build_context(image):
    name, instructions = image
    ignored = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for instruction in instructions:
        if instruction.keyword not in {"COPY", "ADD"}:
            continue
        words = instruction.args.split()
        if any(word.startswith("--from") for word in words):
            continue
        sources = [word for word in words if not word.startswith("--")][:-1]
        for source in sources:
            assert list(ROOT.glob(source)), f"{name}: COPY source {source} is not in the repository"
            assert source.split("/")[0] not in ignored, f"{name}: COPY source {source} is in .dockerignore"


def test_final_stage_suits_a_read_only_root_filesystem(image):
    name, instructions = image
    final_stage = max(instruction.stage for instruction in instructions)
    env = env_assignments(instructions, final_stage)
    for key, value in {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}.items():
        assert env.get(key) == value, f"{name}: the final stage needs ENV {key}={value}"
    for key in ("MPLCONFIGDIR", "NUMBA_CACHE_DIR", "HF_HOME"):
        if key in env:
            assert env[key].startswith("/tmp/"), f"{name}: {key} outside /tmp"
    # The venv built in the builder stage is what the runtime stage runs.
    assert "/opt/venv/bin" in env.get("PATH", ""), f"{name}: /opt/venv/bin is not on PATH"


def test_serve_image_runs_the_seldon_microservice():
    instructions = parse_dockerfile(IMAGES_DIR / "serve" / "Dockerfile")
    final_stage = max(instruction.stage for instruction in instructions)
    assert env_assignments(instructions, final_stage).get("OMP_NUM_THREADS") == "1"
    exposed = {
        port.split("/")[0]
        for instruction in instructions
        if instruction.keyword == "EXPOSE"
        for port in instruction.args.split()
    }
    assert {"9000", "6000", "5000"} <= exposed
    entrypoints = [instruction.args for instruction in instructions if instruction.keyword == "ENTRYPOINT"]
    assert entrypoints and entrypoints[-1] == '["seldon-core-microservice"]'


def test_watch_image_sends_numba_caches_to_tmp():
    instructions = parse_dockerfile(IMAGES_DIR / "watch" / "Dockerfile")
    final_stage = max(instruction.stage for instruction in instructions)
    env = env_assignments(instructions, final_stage)
    assert env.get("NUMBA_CACHE_DIR", "").startswith("/tmp/")
    assert env.get("MPLCONFIGDIR", "").startswith("/tmp/")


def test_dockerignore_keeps_local_state_out_of_the_context():
    patterns = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for pattern in (".venvs", ".tools", ".ctloop", ".git", "tests", "bench/results"):
        assert pattern in patterns, f".dockerignore lacks {pattern}"
    assert {"**/__pycache__", "__pycache__"} & patterns


@pytest.mark.parametrize("env", ENVS)
def test_lock_pins_every_requirement_with_hashes(env):
    for lock in ("requirements.lock", "local.lock"):
        entries = parse_lock(IMAGES_DIR / env / lock)
        assert entries, f"{env}/{lock} is empty"
        unhashed = sorted(name for name, (_, hashes) in entries.items() if not hashes)
        assert not unhashed, f"{env}/{lock}: pins without --hash=sha256: {unhashed}"


@pytest.mark.parametrize("env", ENVS)
def test_local_lock_carries_the_image_pins(env):
    image_lock = parse_lock(IMAGES_DIR / env / "requirements.lock")
    local_lock = parse_lock(IMAGES_DIR / env / "local.lock")
    missing = sorted(set(image_lock) - set(local_lock))
    assert not missing, f"{env}: local.lock lacks {missing}"
    differing = {
        name: (version, local_lock[name][0])
        for name, (version, _) in image_lock.items()
        if local_lock[name][0] != version
    }
    assert not differing, f"{env}: image pin vs local pin differ: {differing}"
    rehashed = sorted(name for name, (_, hashes) in image_lock.items() if local_lock[name][1] != hashes)
    assert not rehashed, f"{env}: same pins, different hashes: {rehashed}"
    extra = set(local_lock) - set(image_lock)
    assert {"pytest", "pytest-timeout"} <= extra | set(image_lock), f"{env}: local.lock lacks the test tools"
