"""Builds ctloop's images from images/Dockerfile: with Docker where an engine answers, with buildah where none does.

    python3 images/build.py [--engine auto|docker|buildah] [--registry R] [--tag T] [IMAGE ...]

Both engines build the same Dockerfile, each image tagged <registry>/ctloop-<image>:<tag> as the chart expects.
buildah needs no daemon: it runs as root with chroot isolation and its own storage (/var/lib/containers). A buildah
build that fails on its known transient error (TRANSIENT below) is run again, at most three times in all.

Where the base image cannot be pulled (no registry is reachable), buildah builds on a stand-in made from Debian 12's
own packages with mmdebstrap (python3.11 with its headers, python3-pip) and tagged with the base's name, and the build
says so. The stand-in is for building and testing on such a machine only: its Python is Debian's 3.11.2, not the
base's 3.11.14, and what it builds must not be published.

pip inside the build trusts the machine's certificate bundle (the file PIP_CERT, SSL_CERT_FILE or REQUESTS_CA_BUNDLE
names, else the system's), handed in as a build secret (RUN --mount=type=secret): machines that reach the index
through a TLS-intercepting proxy need it, and a secret mount leaves nothing in any layer.

Each image's build time and size go to <out>/images.json and images.md (default bench/results). Standard library
only: it runs before any environment exists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ("validate", "train", "serve", "control", "watch")
BASE = "docker.io/library/python:3.11.14-slim-bookworm"  # images/Dockerfile's FROM, fully qualified
STAND_IN_LABEL = "org.ctloop.stand-in"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's and Ubuntu's
# buildah's chroot isolation runs each RUN step through a sealed in-memory copy of a helper; now and then the kernel
# refuses the seal (EBUSY) and the step fails before anything in it ran. Such a build is run again, at most this
# many times in all; with --layers the steps already built come from the cache.
TRANSIENT = "sealing memfd copy: Device or resource busy"
BUILDAH_ATTEMPTS = 3


def default_tag() -> str:
    return re.search(r'"(.+)"', (ROOT / "src/ctloop/__init__.py").read_text()).group(1)


def docker_answers() -> bool:
    return (
        shutil.which("docker") is not None and subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    )


def ca_bundle() -> Path | None:
    """The certificates pip in the build should trust: the machine's own, which hold a TLS-intercepting proxy's CA
    where there is one (the base image's pip would trust only certifi's)."""
    named = [os.environ.get(name) for name in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")]
    for candidate in (*filter(None, named), SYSTEM_CA_BUNDLE):
        if Path(candidate).is_file():
            return Path(candidate)
    return None


def run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kwargs)


# -- buildah


def run_buildah(argv: list[str]) -> None:
    """Runs a buildah build, its output passed through as it comes; again after the transient failure above."""
    for attempt in range(1, BUILDAH_ATTEMPTS + 1):
        transient = False
        with subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:
            for line in process.stdout:
                sys.stdout.write(line)
                transient = transient or TRANSIENT in line
        sys.stdout.flush()
        if process.returncode == 0:
            return
        if not transient or attempt == BUILDAH_ATTEMPTS:
            raise subprocess.CalledProcessError(process.returncode, argv)
        print(f"images/build.py: buildah failed on a transient error ({TRANSIENT}); building again, attempt "
              f"{attempt + 1} of {BUILDAH_ATTEMPTS}", flush=True)  # fmt: skip


def buildah_image(name: str) -> dict | None:
    found = subprocess.run(["buildah", "inspect", "--type", "image", name], capture_output=True, text=True)
    return json.loads(found.stdout) if found.returncode == 0 else None


def stand_in_base() -> None:
    """Makes BASE from Debian's packages, with python, python3 and pip where the real base has them."""
    with tempfile.TemporaryDirectory(prefix="ctloop-base-") as tmp:
        tarball = Path(tmp) / "rootfs.tar"
        packages = "python3.11,python3.11-dev,python3-pip,ca-certificates"
        run(["mmdebstrap", "--quiet", "--variant=minbase", f"--include={packages}", "bookworm", str(tarball),
             DEBIAN_MIRROR])  # fmt: skip
        container = run(["buildah", "from", "scratch"], capture_output=True, text=True).stdout.strip()
        try:
            run(["buildah", "add", "--quiet", container, str(tarball), "/"], capture_output=True)
            root = Path(run(["buildah", "mount", container], capture_output=True, text=True).stdout.strip())
            for link, target in (("python", "/usr/bin/python3.11"), ("python3", "/usr/bin/python3.11"),
                                 ("pip", "/usr/bin/pip3")):  # fmt: skip
                (root / "usr/local/bin" / link).symlink_to(target)
            run(["buildah", "umount", container], capture_output=True)
            run(["buildah", "config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "--cmd", "python3", "--label", f"{STAND_IN_LABEL}=debian-bookworm-python3.11", container])  # fmt: skip
            run(["buildah", "commit", "--quiet", container, BASE], capture_output=True)
        finally:
            subprocess.run(["buildah", "rm", container], capture_output=True)


def ensure_base() -> bool:
    """Pulls BASE if it is not in buildah's storage, else makes the stand-in; True if the stand-in is what builds."""
    found = buildah_image(BASE)
    if found is None:
        pulled = subprocess.run(["timeout", "120", "buildah", "pull", "--quiet", BASE], capture_output=True, text=True)
        if pulled.returncode == 0:
            return False
        stand_in_base()
    elif STAND_IN_LABEL not in (found["OCIv1"]["config"].get("Labels") or {}):
        return False
    print(f"{BASE} cannot be pulled here: building on a stand-in made from Debian 12's python3.11 with mmdebstrap "
          "(for this machine only: do not publish these images)", flush=True)  # fmt: skip
    return True


# -- both


def build(engine: str, image: str, name: str, ca: Path | None) -> None:
    common = ["-f", "images/Dockerfile", "--build-arg", f"IMAGE={image}", "--target", image, "--build-arg",
              f"CTLOOP_GIT_SHA={git_sha()}", "-t", name]  # fmt: skip
    secret = ["--secret", f"id=pip-ca,src={ca}"] if ca else []
    if engine == "docker":
        run(["docker", "build", *secret, *common, "."], cwd=ROOT, env={**os.environ, "DOCKER_BUILDKIT": "1"})
    else:
        run_buildah(["buildah", "bud", "--isolation", "chroot", "--pull=never", "--layers", *secret, *common, "."])


def size(engine: str, name: str) -> int:
    """The image's size in bytes, uncompressed; podman reads buildah's storage."""
    tool = "docker" if engine == "docker" else "podman"
    found = run([tool, "image", "inspect", "--format", "{{.Size}}", name], capture_output=True, text=True)
    return int(found.stdout.strip())


def git_sha() -> str:
    found = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return found.stdout.strip() if found.returncode == 0 else ""


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("images", nargs="*", metavar="IMAGE", help=f"one or more of {', '.join(IMAGES)} (default: all)")
    p.add_argument("--engine", choices=["auto", "docker", "buildah"], default="auto")
    p.add_argument("--registry", default="ghcr.io/ctloop")
    p.add_argument("--tag", default=default_tag())
    p.add_argument("--out", type=Path, default=ROOT / "bench/results")
    args = p.parse_args(argv)
    unknown = sorted(set(args.images) - set(IMAGES))
    if unknown:
        p.error(f"no image {', '.join(unknown)}: the images are {', '.join(IMAGES)}")
    engine = args.engine if args.engine != "auto" else "docker" if docker_answers() else "buildah"
    if engine == "buildah" and not shutil.which("buildah"):
        sys.exit("images/build.py: no Docker engine answers and buildah is not installed (make images installs it)")
    ca = ca_bundle()
    print(f"engine: {engine}" + (f"; pip in the build trusts {ca} (a build secret, kept in no layer)" if ca else ""))
    stand_in = engine == "buildah" and ensure_base()
    built = []
    for image in args.images or IMAGES:
        name = f"{args.registry}/ctloop-{image}:{args.tag}"
        started = time.monotonic()
        build(engine, image, name, ca)
        seconds = time.monotonic() - started
        built.append({"image": image, "name": name, "seconds": round(seconds, 1), "bytes": size(engine, name)})
        print(f"built {name} in {seconds:.0f} s, {built[-1]['bytes'] / 1e6:,.0f} MB", flush=True)
    report(args.out, engine, stand_in, built)


def report(out: Path, engine: str, stand_in: bool, built: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    doc = {"when": when, "engine": engine, "stand_in_base": stand_in, "commit": git_sha(),
           "machine": f"{platform.machine()} ({os.cpu_count()} CPUs)", "images": built}  # fmt: skip
    (out / "images.json").write_text(json.dumps(doc, indent=2) + "\n")
    base = "a stand-in base made from Debian 12's python3.11 (not publishable)" if stand_in else BASE
    lines = ["# Images", "", f"{when} on {doc['machine']}, commit {doc['commit']}: built with {engine} on {base}.",
             "Build times count what the layer cache did not already hold: the first image's includes the stages every "
             "image shares.", "",
             "| image | build time | size |", "| --- | ---: | ---: |"]  # fmt: skip
    lines += [f"| {b['name']} | {b['seconds']:.0f} s | {b['bytes'] / 1e6:,.0f} MB |" for b in built]
    (out / "images.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
