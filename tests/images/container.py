"""Runs a built image as the cluster's pod specs run it, on a machine with no container engine.

What the chart and the pipelines ask of every pod is reproduced with util-linux and iproute2, as root:
- the image's root filesystem (buildah's storage, mounted by ``buildah mount``) bound read-only
  (``readOnlyRootFilesystem: true``);
- a user that is not root and has no passwd entry (``runAsUser: 10001``, the image's USER);
- /tmp the only writable path (the emptyDir volume), here a host folder so that the test reads what was written;
- inputs bound read-only elsewhere (a ConfigMap, the storage initializer's /mnt/models);
- a network namespace of its own with loopback only (``ip netns``): the test's clients join it with
  ``ip netns exec``, as a sidecar shares a pod's network;
- its own PID and mount namespaces, /proc, a minimal /dev and a 64 MB /dev/shm, as a runtime provides.

An OCI runtime would do the same, but neither podman nor crun starts a container in these sandboxed machines (crun
refuses hybrid cgroups and setrlimit), so the steps are taken here, in the open. Capabilities are not dropped (the
user is not root, so it holds none) and no seccomp profile applies.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import uuid
from pathlib import Path

USER = "10001:10001"
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _out(argv: list[str]) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()


class Image:
    """A built image's root filesystem, mounted from buildah's storage until ``close``."""

    def __init__(self, name: str):
        self.name = name
        self.config = json.loads(_out(["buildah", "inspect", "--type", "image", name]))["OCIv1"]["config"]
        self.container = _out(["buildah", "from", "--pull-never", "--quiet", name])
        self.root = Path(_out(["buildah", "mount", self.container]))

    def close(self) -> None:
        subprocess.run(["buildah", "umount", self.container], capture_output=True)
        subprocess.run(["buildah", "rm", self.container], capture_output=True)


class Pod:
    """A network namespace with loopback up, where containers run and the test's clients connect."""

    def __init__(self):
        self.netns = f"ctloop-img-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)

    def exec(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Runs a program of the host's in the pod's network (the test's client)."""
        return subprocess.run(["ip", "netns", "exec", self.netns, *argv], **kwargs)

    def start(self, image: Image, tmp: Path, command: list[str] | None = None, args: list[str] | None = None,
              read_only: dict[str, Path] | None = None, writable: dict[str, Path] | None = None,
              env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:  # fmt: skip
        """Starts a container of ``image``; ``command`` and ``args`` as in a pod spec (command replaces the
        image's ENTRYPOINT, args its CMD). ``tmp`` is its /tmp; ``writable`` are further writable volumes (a
        PersistentVolumeClaim), owned by the pod's user as fsGroup would make them."""
        for folder in (tmp, *(writable or {}).values()):
            folder.mkdir(parents=True, exist_ok=True)
            os.chown(folder, 10001, 10001)
        config = image.config
        if command is None:
            command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [] if args is None else args)]
        else:
            command = [*command, *(args or [])]
        root = image.root
        mounts = dict(read_only or {})
        workdir = config.get("WorkingDir") or "/"
        # Mount points, as the kubelet makes them, and the working directory, which OCI runtimes make when the
        # image lacks it (buildah's WORKDIR makes none in a stage that runs nothing after it).
        for target in (*mounts, *(writable or {}), workdir):
            (root / target.lstrip("/")).mkdir(parents=True, exist_ok=True)
        for source in mounts.values():  # readable by the pod's user, as a volume with its fsGroup would be
            subprocess.run(["chmod", "-R", "a+rX", str(source)], check=True)
        steps = [
            "mount --make-rprivate /",
            f"mount --bind {root} {root}",
            f"mount -t proc proc {root}/proc",
            f"mount -t tmpfs -o mode=755,size=1m tmpfs {root}/dev",
            *(f"touch {root}/dev/{d} && mount --bind /dev/{d} {root}/dev/{d}" for d in DEVICES),
            f"mkdir {root}/dev/shm && mount -t tmpfs -o mode=1777,size=64m tmpfs {root}/dev/shm",
            f"mount --bind {tmp} {root}/tmp",
            *(
                f"mount --bind {shlex.quote(str(source))} {root}{target} && mount -o remount,bind,ro {root}{target}"
                for target, source in mounts.items()
            ),  # fmt: skip
            *(f"mount --bind {shlex.quote(str(source))} {root}{target}" for target, source in (writable or {}).items()),
            f"mount -o remount,bind,ro {root}",
        ]
        # The image's environment and the pod's, handed down from here rather than on a command line, where the
        # secrets among them would show in every process listing. Its PATH also finds the tools used on the way.
        environment = dict(item.split("=", 1) for item in config.get("Env", []))
        environment.update(env or {})
        user = config.get("User") or USER
        inside = ["/bin/sh", "-c", 'cd "$0" && exec "$@"', workdir, *command]
        script = " && ".join(steps) + f" && exec chroot --userspec={user} {root} " + shlex.join(inside)
        stream = log.open("wb") if log else subprocess.DEVNULL
        try:
            return subprocess.Popen(
                ["ip", "netns", "exec", self.netns, "unshare", "--mount", "--pid", "--fork", "--kill-child", "--",
                 "/bin/sh", "-c", script],
                stdout=stream, stderr=subprocess.STDOUT, env=environment,
            )  # fmt: skip
        finally:
            if log:
                stream.close()  # the container holds its own copy

    @staticmethod
    def stop(process: subprocess.Popen, grace: float = 10) -> int:
        """Ends a container as the kubelet does: SIGTERM to its first process, SIGKILL once the grace period is over.
        That process is the first of its PID namespace, so every other process in it dies with it. (unshare, which
        ``process`` is, ignores SIGTERM while it waits, and the child it would kill on its own death has changed
        user, which clears that request.)"""
        try:
            first = [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]
        except FileNotFoundError:  # it has ended already
            first = []
        for pid in first:
            os.kill(pid, signal.SIGTERM)
        try:
            return process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            for pid in first:
                os.kill(pid, signal.SIGKILL)
            return process.wait(timeout=30)

    def close(self) -> None:
        """Removes the network namespace; a process still in it (a container not stopped) is killed and named."""
        left = _out(["ip", "netns", "pids", self.netns]).split()
        for pid in left:
            os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        assert not left, f"processes {left} outlived their container in {self.netns}"
