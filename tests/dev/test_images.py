"""Static checks of the images: the one Dockerfile, images/Dockerfile, and the hashed locks it installs.

No Docker engine is needed: the Dockerfile is parsed line by line, and the build of each image
(`--build-arg IMAGE=<name> --target <name>`) is worked out from it: the stages the target needs, the build
argument substituted where it is in scope, and the settings the target stage inherits. Each image installs
exactly images/<name>/requirements.lock; the local environment .venvs/<name> installs images/<name>/local.lock,
which must carry the same pins (plus the test tools). The local room (local/, ctloop.local) never goes into an
image.
"""

import ast
import fnmatch
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = ROOT / "images"
DOCKERFILE = IMAGES_DIR / "Dockerfile"
IMAGES = ["validate", "train", "serve", "control", "watch"]
ENVS = [*IMAGES, "dev"]
LOCAL_ROOM = "local"
# Rooms no image runs: the local world, and the monitoring rules its Prometheus loads (the chart has its own link).
NOT_IN_IMAGES = {LOCAL_ROOM, "monitoring"}
# Where lineage (ctloop.provenance) finds the image lock: beside the environment, in images and locally.
LOCK_IN_ENV = "ctloop-image.lock"

BASE_IMAGE = re.compile(r"^python:3\.11(\.\d+)?-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")
NUMERIC_USER = re.compile(r"^(\d+)(?::(\d+))?$")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)\s*(;.*)?$")
HASH = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
SELDON_PORTS = {"9000", "6000", "5000"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM it follows


@dataclass(frozen=True)
class Stage:
    index: int
    name: str  # the `AS` name, else the index
    parent: str  # what its FROM names: an external image or an earlier stage
    instructions: tuple[Instruction, ...]  # its FROM first


@dataclass(frozen=True)
class Build:
    """What `docker build --target <target>` runs: the stages it needs, in file order, and the target's
    chain (the target and the stages it is FROM, outermost first)."""

    stages: tuple[Stage, ...]
    chain: tuple[Stage, ...]

    def instructions(self) -> list[Instruction]:
        return [instruction for stage in self.stages for instruction in stage.instructions]


@dataclass
class Settings:
    """The image configuration the target stage ends up with (inherited through FROM)."""

    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    entrypoint: str | None = None
    cmd: str | None = None
    exposed: set[str] = field(default_factory=set)


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


def split_stages(instructions: list[Instruction]) -> list[Stage]:
    stages = []
    for index in range(max(instruction.stage for instruction in instructions) + 1):
        own = tuple(instruction for instruction in instructions if instruction.stage == index)
        words = [word for word in own[0].args.split() if not word.startswith("--platform")]
        name = words[2].lower() if len(words) >= 3 and words[1].upper() == "AS" else str(index)
        stages.append(Stage(index, name, words[0], own))
    return stages


def with_build_args(stage: Stage, build_args: dict[str, str]) -> Stage:
    """The stage with each build argument it declares (ARG, in scope from there to the stage's end, as in Docker)
    replaced by its value, or its default when the build passes none."""
    scope: dict[str, str] = {}
    instructions = [stage.instructions[0]]
    for instruction in stage.instructions[1:]:
        if instruction.keyword == "ARG":
            name, _, default = instruction.args.partition("=")
            scope[name] = build_args.get(name, default.strip('"'))
        else:
            args = VARIABLE.sub(lambda m: scope.get(m.group(1) or m.group(2), m.group(0)), instruction.args)
            instruction = Instruction(instruction.keyword, args, instruction.stage)
        instructions.append(instruction)
    return Stage(stage.index, stage.name, stage.parent, tuple(instructions))


def copy_from(instruction: Instruction) -> str | None:
    """The stage (or image) a COPY --from reads, None for a copy from the build context."""
    for word in instruction.args.split():
        if word.startswith("--from="):
            return word.split("=", 1)[1].lower()
    return None


def build(stages: list[Stage], target: str, build_args: dict[str, str]) -> Build:
    by_name = {stage.name: stage for stage in stages} | {str(stage.index): stage for stage in stages}
    assert target in by_name, f"images/Dockerfile has no stage {target!r} to build with --target {target}"
    needed: set[int] = set()
    todo = [by_name[target]]
    while todo:
        stage = todo.pop()
        if stage.index in needed:
            continue
        needed.add(stage.index)
        references = [stage.parent.lower()]
        references += [copy_from(i) for i in stage.instructions if i.keyword in {"COPY", "ADD"} and copy_from(i)]
        todo += [by_name[reference] for reference in references if reference in by_name]
    built = {index: with_build_args(stages[index], build_args) for index in needed}
    chain = [built[by_name[target].index]]
    while chain[0].parent.lower() in by_name:
        chain.insert(0, built[by_name[chain[0].parent.lower()].index])
    return Build(tuple(built[index] for index in sorted(built)), tuple(chain))


def assignments(args: str) -> dict[str, str]:
    """key=value pairs of an ENV or LABEL instruction (the legacy `ENV key value` form included)."""
    if "=" not in args.split(" ", 1)[0]:
        key, _, value = args.partition(" ")
        return {key: value.strip()}
    return {key: value.strip('"') for key, value in re.findall(r'([A-Za-z_][\w.-]*)=("[^"]*"|\S+)', args)}


def settings(image_build: Build) -> Settings:
    result = Settings()
    for stage in image_build.chain:
        for instruction in stage.instructions:
            if instruction.keyword == "ENV":
                result.env |= assignments(instruction.args)
            elif instruction.keyword == "LABEL":
                result.labels |= assignments(instruction.args)
            elif instruction.keyword == "USER":
                result.user = instruction.args
            elif instruction.keyword == "ENTRYPOINT":
                result.entrypoint = instruction.args
            elif instruction.keyword == "CMD":
                result.cmd = instruction.args
            elif instruction.keyword == "EXPOSE":
                result.exposed |= {port.split("/")[0] for port in instruction.args.split()}
    return result


def context_sources(instructions: list[Instruction]) -> list[str]:
    """What COPY and ADD take from the build context (copies from other stages left out)."""
    sources = []
    for instruction in instructions:
        if instruction.keyword in {"COPY", "ADD"} and copy_from(instruction) is None:
            sources += [word for word in instruction.args.split() if not word.startswith("--")][:-1]
    return sources


def rooms() -> dict[str, str]:
    """setup.py's ROOMS (import name -> folder), read without running setup()."""
    for node in ast.parse((ROOT / "setup.py").read_text()).body:
        names = [target.id for target in getattr(node, "targets", []) if isinstance(target, ast.Name)]
        if "ROOMS" in names and isinstance(node.value, ast.Dict):
            return ast.literal_eval(node.value)
    raise AssertionError("setup.py has no ROOMS = {...}")


def dockerignore_patterns() -> set[str]:
    return {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    }


def make_dry_run(*arguments: str) -> str:
    """The commands `make -n` would run (nothing is run); make's own variables from a calling make are dropped."""
    if shutil.which("make") is None:
        pytest.skip("GNU make is not installed")
    env = {key: value for key, value in os.environ.items() if key not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", *arguments], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


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


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    assert DOCKERFILE.is_file(), f"missing {DOCKERFILE.relative_to(ROOT)}"
    return split_stages(parse_dockerfile(DOCKERFILE))


@pytest.fixture(scope="module", params=IMAGES)
def image(request, stages) -> tuple[str, Build]:
    name = request.param
    return name, build(stages, name, {"IMAGE": name, "CTLOOP_GIT_SHA": "0123456789ab"})


def test_base_images_are_one_tagged_python_3_11_slim(stages):
    external = [stage.parent for stage in stages if stage.parent.lower() not in {s.name for s in stages}]
    assert external, "images/Dockerfile: no FROM"
    for base in external:
        assert BASE_IMAGE.match(base), f"base image {base!r} is not python:3.11[.x]-slim[-dist]"
    # The venv built in one stage runs in another: its interpreter link and compiled extensions need the same base.
    assert len(set(external)) == 1, f"build and runtime stages on different bases: {sorted(set(external))}"
    for stage in stages:
        for instruction in stage.instructions:
            assert not re.search(r":latest\b", instruction.args), f"'latest' in {instruction}"


def test_every_image_has_its_target_on_the_common_runtime(stages):
    names = [stage.name for stage in stages]
    for name in IMAGES:
        assert name in names, f"images/Dockerfile has no `FROM ... AS {name}` stage for --target {name}"
        chain = build(stages, name, {"IMAGE": name}).chain
        venvs = [
            instruction
            for stage in chain
            for instruction in stage.instructions
            if instruction.keyword == "COPY" and copy_from(instruction) and instruction.args.endswith("/opt/venv")
        ]
        assert venvs, f"the {name} target does not get /opt/venv from a build stage"
        assert BASE_IMAGE.match(chain[0].parent), f"the {name} target does not run on the Python base image"


def test_a_build_without_target_fails(stages):
    # Without --target docker builds the last stage: it must not be an image (another image's settings would
    # silently go with IMAGE's lock) and must stop the build.
    last = stages[-1]
    assert last.name not in IMAGES, f"the last stage is the {last.name} image: a build without --target makes it"
    runs = [instruction.args for instruction in last.instructions if instruction.keyword == "RUN"]
    assert any(re.search(r"\bexit [1-9]", run) for run in runs), "the last stage does not fail the build"


def test_a_build_without_the_image_argument_fails(stages):
    builder = build(stages, "train", {})
    checks = [
        instruction.args
        for instruction in builder.instructions()
        if instruction.keyword == "RUN" and re.search(r'test -n ""', instruction.args)
    ]
    assert checks, "without --build-arg IMAGE the build does not stop before installing a lock"


def test_runs_as_a_numeric_non_root_user(image):
    name, image_build = image
    user = settings(image_build).user
    assert user, f"{name}: no USER instruction, the image would run as root"
    match = NUMERIC_USER.match(user)
    assert match, f"{name}: USER {user!r} is not numeric (runAsNonRoot needs a numeric uid)"
    assert int(match.group(1)) != 0, f"{name}: USER is root"
    assert match.group(2) is None or int(match.group(2)) != 0, f"{name}: group is root"


def test_installs_its_own_lock_with_hashes(image):
    name, image_build = image
    instructions = image_build.instructions()
    lock = f"images/{name}/requirements.lock"
    runs = [instruction.args for instruction in instructions if instruction.keyword == "RUN"]
    installs = [command for command in runs if re.search(r"\bpip\b.*\binstall\b", command)]
    locked = [command for command in installs if re.search(rf"(-r|--requirement)[ =]\S*{re.escape(lock)}\b", command)]
    assert locked, f"{name}: no `pip install -r {lock}`"
    for command in locked:
        assert "--require-hashes" in command, f"{name}: lock installed without --require-hashes"
        assert "--no-deps" in command, f"{name}: lock installed without --no-deps"
    for other in ENVS:
        if other != name:
            assert all(f"images/{other}/" not in command for command in runs), f"{name} installs {other}'s lock"
    assert lock in context_sources(instructions), f"{name}: {lock} is never copied into the build"
    # Lineage: the lock goes beside the environment the runtime stage copies.
    assert any(
        re.search(rf"\bcp {re.escape(lock)} /opt/venv/{re.escape(LOCK_IN_ENV)}\b", command) for command in runs
    ), f"{name}: {lock} is not copied to /opt/venv/{LOCK_IN_ENV}"
    wheels = [command for command in installs if re.search(r"ctloop-\S*\.whl", command)]
    assert wheels, f"{name}: the ctloop wheel is not installed"
    assert all("--no-deps" in command for command in wheels), f"{name}: ctloop installed with its dependencies"


def test_copy_sources_exist_in_the_build_context(image):
    name, image_build = image
    ignored = {pattern.rstrip("/") for pattern in dockerignore_patterns()}
    for source in context_sources(image_build.instructions()):
        assert list(ROOT.glob(source)), f"{name}: COPY source {source} is not in the repository"
        assert source.split("/")[0] not in ignored, f"{name}: COPY source {source} is in .dockerignore"


def test_copies_every_room_an_image_runs_and_nothing_else(image):
    name, image_build = image
    folders = rooms()
    assert folders.get(f"ctloop.{LOCAL_ROOM}") == LOCAL_ROOM, "setup.py does not mount local/ as ctloop.local"
    # setup.py skips a room whose folder is absent, so a room the Dockerfile forgets would vanish silently.
    wanted = {PurePosixPath(folder).parts[0] for folder in folders.values() if folder not in NOT_IN_IMAGES}
    project = {"pyproject.toml", "setup.py", "README.md", f"images/{name}/requirements.lock"}
    copied = {str(PurePosixPath(source)) for source in context_sources(image_build.instructions())}
    assert wanted <= copied, f"{name}: rooms not copied into the build: {sorted(wanted - copied)}"
    assert copied <= wanted | project, f"{name}: copies more than the project and its lock: {copied - wanted - project}"


def test_never_copies_the_local_room(stages):
    # Every build, whatever IMAGE says, and every stage, needed by an image or not.
    instructions = [instruction for stage in stages for instruction in stage.instructions]
    for source in context_sources(instructions):
        parts = PurePosixPath(source).parts
        assert parts, f"COPY {source} copies the whole build context, local/ included (unless ignored)"
        assert not fnmatch.fnmatchcase(LOCAL_ROOM, parts[0]), f"COPY {source} copies local/"


def test_dockerignore_excludes_the_local_room():
    patterns = dockerignore_patterns()
    assert {LOCAL_ROOM, f"{LOCAL_ROOM}/", f"/{LOCAL_ROOM}"} & patterns, ".dockerignore does not exclude local/"
    reincluded = [pattern for pattern in patterns if pattern.startswith("!") and LOCAL_ROOM in pattern]
    assert not reincluded, f".dockerignore lets local/ back in: {reincluded}"


def test_final_stage_suits_a_read_only_root_filesystem(image):
    name, image_build = image
    env = settings(image_build).env
    for key, value in {"HOME": "/tmp", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}.items():
        assert env.get(key) == value, f"{name}: the image needs ENV {key}={value}"
    for key in ("MPLCONFIGDIR", "NUMBA_CACHE_DIR", "HF_HOME"):
        if key in env:
            assert env[key].startswith("/tmp/"), f"{name}: {key} outside /tmp"
    # The venv built in the builder stage is what the runtime stage runs.
    assert "/opt/venv/bin" in env.get("PATH", ""), f"{name}: /opt/venv/bin is not on PATH"
    assert env.get("CTLOOP_GIT_SHA") == "0123456789ab", f"{name}: the CTLOOP_GIT_SHA build argument is not kept"


def test_image_is_labelled_with_its_name(image):
    name, image_build = image
    labels = settings(image_build).labels
    assert labels.get("org.opencontainers.image.title") == f"ctloop-{name}"
    assert labels.get("org.opencontainers.image.licenses") == "Apache-2.0"


def test_serve_image_runs_the_seldon_microservice(stages):
    serve = settings(build(stages, "serve", {"IMAGE": "serve"}))
    assert serve.env.get("OMP_NUM_THREADS") == "1"
    assert serve.exposed >= SELDON_PORTS
    assert serve.entrypoint == '["seldon-core-microservice"]'


@pytest.mark.parametrize("name", [name for name in IMAGES if name != "serve"])
def test_only_the_serve_image_has_seldons_settings(stages, name):
    image_settings = settings(build(stages, name, {"IMAGE": name}))
    # The pod spec sets the command of the others (KFP for components, the chart for services).
    assert image_settings.entrypoint is None and image_settings.cmd is None, f"{name}: has an ENTRYPOINT or CMD"
    assert not SELDON_PORTS & image_settings.exposed, f"{name}: exposes Seldon's ports"
    assert "OMP_NUM_THREADS" not in image_settings.env, f"{name}: carries the serve image's OMP_NUM_THREADS"


def test_watch_image_sends_numba_caches_to_tmp(stages):
    env = settings(build(stages, "watch", {"IMAGE": "watch"})).env
    assert env.get("NUMBA_CACHE_DIR", "").startswith("/tmp/")
    assert env.get("MPLCONFIGDIR", "").startswith("/tmp/")


def test_dockerignore_keeps_local_state_out_of_the_context():
    patterns = dockerignore_patterns()
    for pattern in (".venvs", ".tools", ".ctloop", ".git", "tests", "bench/results"):
        assert pattern in patterns, f".dockerignore lacks {pattern}"
    assert {"**/__pycache__", "__pycache__"} & patterns


def load_build_script():
    spec = importlib.util.spec_from_file_location("images_build", IMAGES_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_make_images_runs_the_build_script_with_the_registry_and_tag():
    declared = re.search(r"^IMAGES\s*:?=\s*(.*)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert declared and declared.group(1).split() == IMAGES, "the Makefile's IMAGES differ from the images"
    assert list(load_build_script().IMAGES) == IMAGES, "images/build.py builds other images than the Makefile's"
    recipe = " ".join(make_dry_run("images", "REGISTRY=registry.example/ml", "TAG=9.9").replace("\\\n", " ").split())
    assert re.search(r"images/build\.py --engine auto --registry registry\.example/ml --tag 9\.9", recipe), recipe


@pytest.mark.parametrize("engine", ["docker", "buildah"])
def test_each_engine_builds_the_target_from_the_one_dockerfile(engine, monkeypatch, tmp_path):
    build = load_build_script()
    ran = []
    monkeypatch.setattr(build, "run", lambda argv, **kwargs: ran.append(argv))
    monkeypatch.setattr(build, "run_buildah", ran.append)
    ca = tmp_path / "ca.pem"
    build.build(engine, "serve", "registry.example/ml/ctloop-serve:9.9", ca)
    build.build(engine, "train", "registry.example/ml/ctloop-train:9.9", None)
    for argv, image, secret in ((ran[0], "serve", True), (ran[1], "train", False)):
        assert argv[:2] == (["docker", "build"] if engine == "docker" else ["buildah", "bud"]) and argv[-1] == "."
        assert argv[argv.index("-f") + 1] == "images/Dockerfile"
        assert argv[argv.index("--target") + 1] == image and f"IMAGE={image}" in argv
        assert argv[argv.index("--build-arg", argv.index(f"IMAGE={image}") + 1) + 1].startswith("CTLOOP_GIT_SHA=")
        assert argv[argv.index("-t") + 1] == f"registry.example/ml/ctloop-{image}:9.9"
        # The CA bundle only as a build secret, which no layer keeps; never as a build argument.
        assert (f"id=pip-ca,src={ca}" in argv) is secret and not any(str(ca) in a for a in argv if "pip-ca" not in a)
    if engine == "buildah":  # no daemon, and never a pull: the base is there or its stand-in was made
        assert all("--isolation" in a and "--pull=never" in a for a in ran)


@pytest.mark.parametrize("failures, message, runs, built", [
    (1, "Close_Fd sealing memfd copy: Device or resource busy", 2, True),  # buildah's transient: built again
    (5, "Close_Fd sealing memfd copy: Device or resource busy", 3, False),  # but not for ever
    (1, "ERROR: No matching distribution found for numpy", 1, False),  # any other failure stops at once
])  # fmt: skip
def test_a_buildah_build_is_run_again_only_after_its_transient_failure(tmp_path, failures, message, runs, built):
    build = load_build_script()
    count = tmp_path / "runs"
    # A stand-in for buildah: fails with the message the first `failures` times, then succeeds.
    script = (
        f"import pathlib, sys; p = pathlib.Path({str(count)!r}); n = len(p.read_text()) if p.exists() else 0; "
        f"p.write_text('x' * (n + 1)); print('STEP 1/2'); n < {failures} and sys.exit(print({message!r}) or 1)"
    )
    argv = [sys.executable, "-c", script]
    if built:
        build.run_buildah(argv)
    else:
        with pytest.raises(subprocess.CalledProcessError):
            build.run_buildah(argv)
    assert len(count.read_text()) == runs


def test_the_dockerfile_hands_pip_the_ca_bundle_only_as_a_secret(stages):
    fetching = [
        instruction
        for stage in stages
        for instruction in stage.instructions
        if instruction.keyword == "RUN"
        and re.search(r"\bpip (wheel|--python)", instruction.args)
        and "--no-index" not in instruction.args
    ]
    assert len(fetching) == 2, fetching  # the wheel's build dependencies, the lock
    for instruction in fetching:
        assert instruction.args.startswith("--mount=type=secret,id=pip-ca,required=false"), instruction.args
        assert "PIP_CERT=/run/secrets/pip-ca" in instruction.args


@pytest.mark.parametrize("env", ENVS)
def test_local_environment_carries_its_image_lock(env):
    assert (IMAGES_DIR / env / "requirements.lock").is_file()
    # -W: as if local.lock had changed, so that make shows the commands that (re)build the environment.
    commands = make_dry_run("-W", f"images/{env}/local.lock", f".venvs/{env}/.ready").splitlines()
    assert f"cp images/{env}/requirements.lock .venvs/{env}/{LOCK_IN_ENV}" in commands, commands


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


def test_pip_in_the_build_trusts_the_machines_bundle(monkeypatch, tmp_path):
    build = load_build_script()
    named, system = tmp_path / "proxy-ca.pem", tmp_path / "system.pem"
    named.write_text("x")
    system.write_text("x")
    monkeypatch.setattr(build, "SYSTEM_CA_BUNDLE", str(system))
    for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    assert build.ca_bundle() == system
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "absent.pem"))  # a name that points nowhere is passed over
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(named))
    assert build.ca_bundle() == named
    monkeypatch.setattr(build, "SYSTEM_CA_BUNDLE", str(tmp_path / "absent.pem"))
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert build.ca_bundle() is None
