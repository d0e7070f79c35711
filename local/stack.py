"""The local stack: the services of the embedded mode, run as background processes on loopback: MLflow,
Prometheus, the Seldon gateway, the retrain webhook, the drift watcher and the rollout controller.

Each service is a ``Service``: a command, a health URL and the files it keeps under
``<state_dir>/stack/``: ``<name>.log`` and ``<name>.pid`` (the PID and the process start time, so that a
PID reused by another program after a reboot is never mistaken for ours). ``up`` starts what is not already
running and waits until every service answers its health URL; ``down`` stops them, group and all.
The services read one resolved copy of the settings (``stack/ctloop.yaml``); the shared secrets are generated once
into ``stack/secrets.json`` (mode 0600, ``ctloop.shared_secrets``) and handed over in the environment, as a
Kubernetes Secret would be.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import yaml

from ctloop import deployment_target, monitoring, shared_secrets
from ctloop.config import LOCAL_HOST, Settings
from ctloop.errors import BadInputError, CtloopError, NotReadyError
from ctloop.local import environments

__all__ = ["Service", "ServiceStatus", "down", "services", "status", "up"]

HOST = LOCAL_HOST


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    port: int
    health_path: str
    url: str
    env: dict[str, str] = field(default_factory=dict)
    # Written before start: (relative path, content).
    files: tuple[tuple[str, str], ...] = ()
    # Run after the files are written and before start, to refuse a bad configuration early.
    check: list[str] | None = None


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # "healthy", "starting" (running, not answering yet) or "stopped"
    pid: int | None
    url: str


def _stack_dir(settings: Settings) -> Path:
    return Path(settings.local.state_dir) / "stack"


def _prometheus_config(settings: Settings) -> str:
    interval = f"{settings.local.scrape_interval_s}s"
    local = settings.local
    jobs = {
        "prometheus": local.prometheus_port,
        "mlflow": local.mlflow_port,
        "gateway": local.gateway_port,
        "retrain-webhook": local.webhook_port,
        "drift-watcher": local.watcher_port,
        "rollout-controller": local.rollout_port,
    }
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        # The alert and recording rules the chart ships, so that alerts and dashboards behave as in the cluster.
        "rule_files": [str(monitoring.RULES)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"{HOST}:{port}"]}]} for job, port in jobs.items()
        ],
    }
    return yaml.safe_dump(config, sort_keys=False)


def services(settings: Settings) -> list[Service]:
    """The local stack's services, in start order."""
    state = Path(settings.local.state_dir)
    mlflow_dir = state / "mlflow"
    prom_dir = state / "prometheus"
    mlflow_port, prom_port = settings.local.mlflow_port, settings.local.prometheus_port
    gateway_port = settings.local.gateway_port
    control_python = environments.python_for(settings, "control")
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        raise NotReadyError(
            "prometheus is not installed: run `make setup` (installs Debian's prometheus package as root), "
            "or `sudo apt-get install prometheus`, or put the prometheus binary on PATH"
        )
    promtool = shutil.which("promtool")
    watch_python = environments.python_for(settings, "watch")
    config_file = (_stack_dir(settings) / "ctloop.yaml").resolve()
    # The resolved settings (absolute paths; endpoints the file left unset are this stack's, see config).
    config_files = (("stack/ctloop.yaml", yaml.safe_dump(json.loads(settings.json()), sort_keys=False)),)
    shared = shared_secrets.shared(settings)
    secret_env = settings.webhook.secret_env

    def loop_service(name: str, python: Path, module: str, port: int, env: dict, own_state: bool = True) -> Service:
        # The watcher and the webhook keep their journal and queue in a folder of their own; the rollout
        # controller's state is on the SeldonDeployment objects, in the gateway's folder under local.state_dir.
        state_args = ["--state", str((state / name).resolve())] if own_state else []
        return Service(
            name=name,
            argv=[
                str(python.absolute()),
                "-m",
                module,
                "--config",
                str(config_file),
                "--host",
                HOST,
                "--port",
                str(port),
                *state_args,
            ],  # fmt: skip
            port=port,
            health_path="/readyz",
            url=f"http://{HOST}:{port}",
            env=env,
            files=config_files,
        )

    return [
        Service(
            name="mlflow",
            # One worker: four (the default) take twice as long to answer on a small machine.
            # --no-serve-artifacts with a file:// root writes physical artifact locations into the registry,
            # which the model server can read, as it reads s3:// locations in the cluster.
            argv=[
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                HOST,
                "--port",
                str(mlflow_port),
                "--workers",
                "1",
                "--backend-store-uri",
                f"sqlite:///{(mlflow_dir / 'mlflow.db').resolve()}",
                "--default-artifact-root",
                (mlflow_dir / "artifacts").resolve().as_uri(),
                "--no-serve-artifacts",
                "--expose-prometheus",
                str((mlflow_dir / "metrics").resolve()),
            ],
            port=mlflow_port,
            health_path="/health",
            url=f"http://{HOST}:{mlflow_port}",
            env={"MLFLOW_ALLOW_HTTP_REDIRECTS": "false"},
        ),
        Service(
            name="prometheus",
            argv=[
                prometheus,
                f"--config.file={(prom_dir / 'prometheus.yml').resolve()}",
                f"--storage.tsdb.path={(prom_dir / 'data').resolve()}",
                f"--web.listen-address={HOST}:{prom_port}",
                "--web.enable-lifecycle",
            ],
            port=prom_port,
            health_path="/-/ready",
            url=f"http://{HOST}:{prom_port}",
            files=(("prometheus/prometheus.yml", _prometheus_config(settings)),),
            check=[promtool, "check", "config", str((prom_dir / "prometheus.yml").resolve())] if promtool else None,
        ),
        Service(
            name="gateway",
            # Seldon's ingress and executor for the embedded mode: it runs the predictors of the SeldonDeployment
            # objects in its folder (the local deployment target writes them there).
            argv=[
                str(control_python.absolute()),
                "-m",
                "ctloop.local.gateway",
                "--deployments",
                str(deployment_target.local_root(state).resolve()),
                "--venvs",
                str(Path(settings.local.venvs_dir).resolve()),
                "--host",
                HOST,
                "--port",
                str(gateway_port),
            ],  # fmt: skip
            port=gateway_port,
            health_path="/health",
            url=f"http://{HOST}:{gateway_port}",
        ),
        loop_service("webhook", control_python, "ctloop.services.retrain_webhook", settings.local.webhook_port, shared),
        loop_service(
            "watcher",
            watch_python,
            "ctloop.services.drift_watcher",
            settings.local.watcher_port,
            {env: shared[env] for env in (secret_env, settings.endpoints.watcher.token_env)},
        ),
        loop_service(
            "rollout", control_python, "ctloop.services.rollout_controller", settings.local.rollout_port, {}, False
        ),
    ]


# ---------------------------------------------------------------------------------------------------------------
# Processes


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot), or None when no such process lives."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited; only its parent has not reaped it yet
        return None
    return fields[19]


def _read_pid(pid_file: Path) -> int | None:
    """The PID recorded in ``pid_file`` if that very process still runs."""
    try:
        pid_text, started = pid_file.read_text().split()
        pid = int(pid_text)
    except (FileNotFoundError, ValueError):
        return None
    return pid if _start_time(pid) == started else None


def _healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except (URLError, OSError, ValueError):
        return False


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex((HOST, port)) == 0


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One `up` or `down` at a time per state folder."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _start(service: Service, folder: Path, state_dir: Path) -> int:
    for relative, content in service.files:
        target = state_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    if service.check:
        result = subprocess.run(service.check, capture_output=True, text=True)
        if result.returncode != 0:
            raise CtloopError(f"{service.name}: generated configuration rejected:\n{result.stdout}{result.stderr}")
    with open(folder / f"{service.name}.log", "ab") as log:
        process = subprocess.Popen(
            service.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=state_dir,
            env={**os.environ, **service.env},
            start_new_session=True,  # its own process group, so that `down` stops its workers too
        )
    started = None
    for _ in range(50):
        started = _start_time(process.pid)
        if started:
            break
        time.sleep(0.01)
    (folder / f"{service.name}.pid").write_text(f"{process.pid} {started}\n")
    return process.pid


def _stop(pid: int, timeout: float = 15.0) -> None:
    started = _start_time(pid)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _start_time(pid) != started or started is None:
            break
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the leader is gone or stuck; leave no worker behind
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


# ---------------------------------------------------------------------------------------------------------------
# Commands


def status(settings: Settings) -> list[ServiceStatus]:
    folder = _stack_dir(settings)
    out = []
    for service in services(settings):
        pid = _read_pid(folder / f"{service.name}.pid")
        if pid is None:
            state = "stopped"
        else:
            state = "healthy" if _healthy(service.url + service.health_path) else "starting"
        out.append(ServiceStatus(service.name, state, pid, service.url))
    return out


def up(settings: Settings, progress=None) -> list[ServiceStatus]:
    """Start every service that is not running, then wait until all answer their health checks."""
    folder = _stack_dir(settings)
    state_dir = Path(settings.local.state_dir)
    with _locked(folder):
        to_start = [s for s in services(settings) if _read_pid(folder / f"{s.name}.pid") is None]
        for service in to_start:
            if _port_in_use(service.port):
                raise BadInputError(
                    f"{service.name}: port {service.port} on {HOST} is taken by another program; "
                    f"stop it or set local.{service.name}_port in ctloop.yaml"
                )
        started: list[tuple[Service, int]] = []
        try:
            for service in to_start:
                started.append((service, _start(service, folder, state_dir)))
                if progress:
                    progress(f"started {service.name} (pid {started[-1][1]})")
            deadline = time.monotonic() + settings.local.startup_timeout_s
            waiting = {s.name: s for s in services(settings)}
            while waiting:
                for name, service in list(waiting.items()):
                    pid = _read_pid(folder / f"{name}.pid")
                    if pid is None:
                        raise CtloopError(
                            f"{name} exited during start; its log ends:\n{_log_tail(folder / f'{name}.log')}"
                        )
                    if _healthy(service.url + service.health_path):
                        del waiting[name]
                        if progress:
                            progress(f"{name} is healthy at {service.url}")
                if waiting and time.monotonic() > deadline:
                    name = next(iter(waiting))
                    raise NotReadyError(
                        f"{name} did not answer {waiting[name].url}{waiting[name].health_path} within "
                        f"{settings.local.startup_timeout_s}s; its log ends:\n{_log_tail(folder / f'{name}.log')}"
                    )
                time.sleep(0.5)
        except BaseException:
            # A half-started stack is worse than none: stop what this call started.
            for service, pid in reversed(started):
                _stop(pid)
                (folder / f"{service.name}.pid").unlink(missing_ok=True)
            raise
    return status(settings)


def down(settings: Settings, progress=None) -> list[ServiceStatus]:
    folder = _stack_dir(settings)
    with _locked(folder):
        for service in reversed(services(settings)):
            pid_file = folder / f"{service.name}.pid"
            pid = _read_pid(pid_file)
            if pid is not None:
                _stop(pid)
                if progress:
                    progress(f"stopped {service.name} (pid {pid})")
            pid_file.unlink(missing_ok=True)
    return status(settings)
