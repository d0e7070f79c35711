"""file:// and plain paths through the artifact layer (the S3 half is tests/dev/test_artifacts_s3.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from ctloop import artifacts
from ctloop.errors import BadInputError, NotFoundError


@pytest.mark.parametrize("as_uri", [False, True])
def test_write_read_list_round_trip(tmp_path, as_uri):
    base = tmp_path.as_uri() if as_uri else str(tmp_path)
    artifacts.write_bytes(artifacts.join(base, "span", "data.csv"), b"a,b\n1,2\n")
    artifacts.write_bytes(artifacts.join(base, "span", "sub", "manifest.json"), b"{}")
    artifacts.write_bytes(artifacts.join(base, "span-2", "x"), b"x")
    assert artifacts.read_bytes(artifacts.join(base, "span", "data.csv")) == b"a,b\n1,2\n"
    listed = artifacts.list_uris(artifacts.join(base, "span"))
    assert listed == [artifacts.join(base, "span", "data.csv"), artifacts.join(base, "span", "sub", "manifest.json")]
    assert artifacts.exists(artifacts.join(base, "span", "data.csv"))
    assert not artifacts.exists(artifacts.join(base, "nothing"))
    assert artifacts.list_uris(artifacts.join(base, "nothing")) == []


def test_replace_is_atomic_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "model.json"
    artifacts.write_bytes(str(target), b"old")
    artifacts.write_bytes(str(target), b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_interrupted_write_keeps_the_old_content(tmp_path):
    """A writer killed mid-write leaves the previous object whole and no partial file under the target name."""
    target = tmp_path / "big.bin"
    target.write_bytes(b"previous")
    script = textwrap.dedent(
        f"""
        import time

        from ctloop import artifacts

        real_fdopen = artifacts.os.fdopen

        def stalling_fdopen(fd, mode):
            f = real_fdopen(fd, mode)
            f.write(b"partial")
            f.flush()
            print("writing", flush=True)
            time.sleep(30)
            return f

        artifacts.os.fdopen = stalling_fdopen
        artifacts.write_bytes({str(target)!r}, b"x" * 10)
        """
    )
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert target.read_bytes() == b"previous"
    # The killed writer's temporary file is hidden from listings and never has the target's name.
    assert artifacts.list_uris(str(tmp_path)) == [str(target)]


def test_errors_name_the_uri(tmp_path):
    missing = str(tmp_path / "nope.csv")
    with pytest.raises(NotFoundError, match="nope.csv"):
        artifacts.read_bytes(missing)
    with pytest.raises(BadInputError, match="ftp://host/x.*unsupported"):
        artifacts.read_bytes("ftp://host/x")
    with pytest.raises(BadInputError, match="is a folder"):
        artifacts.read_bytes(str(tmp_path))
    with pytest.raises(BadInputError, match="needs a bucket"):
        artifacts.read_bytes("s3:///key")
    with pytest.raises(BadInputError, match="empty"):
        artifacts.read_bytes("")
