"""The pipeline launcher: one narrow interface, two backends, picked from the settings in one place (``for_settings``).

- ``KfpLauncher``: ``kfp.Client`` against ``endpoints.kfp.host`` (mode kubernetes), through pipelines/submit.py,
  with the same arguments as ``ctloop pipeline run --host``.
- ``LocalLauncher``: ``ctloop pipeline run --local`` from the dev environment (mode local), as a detached process
  whose log, lock and exit status live in ``<state>/runs/local-<trigger id>/``, so that a run outlives a webhook restart
  and its result is still known afterwards.

Both are idempotent per trigger through ``find``: after a crash or a failed try the worker asks whether an earlier
try already started a run before it launches again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
from enum import Enum
from pathlib import Path
from typing import Protocol

from ctloop.config import Mode, Settings
from ctloop.errors import ConfigError, CtloopError
from ctloop.services.retrain_webhook.store import Trigger

log = logging.getLogger(__name__)

__all__ = ["KfpLauncher", "LaunchError", "Launcher", "LocalLauncher", "RunState", "for_settings"]


class RunState(str, Enum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class LaunchError(CtloopError):
    """A launch (or a look-up) failed; the worker retries it with backoff."""


class Launcher(Protocol):
    name: str

    def launch(self, trigger: Trigger) -> str:
        """Start a run for ``trigger``; return its run id."""

    def find(self, trigger: Trigger) -> str | None:
        """The run id of a run an earlier try started for ``trigger``, or None."""

    def state(self, run_id: str) -> RunState: ...


def run_name(trigger: Trigger) -> str:
    return f"ctloop-retrain-{trigger.id}"


def _arguments(trigger: Trigger) -> dict[str, str]:
    return {
        "data_uri": trigger.data_uri,
        "previous_statistics_uri": trigger.parameters.get("previous_statistics_uri", ""),
        "schema_uri": trigger.parameters.get("schema_uri", ""),
    }


# ---------------------------------------------------------------------------------------------------------------
# Local: a detached `ctloop pipeline run --local`.

# A run folder holds command.json, run.log, `started` (the child's first act), `exit_status` (its last) and `lock`.
# The launcher takes an exclusive flock on `lock` before it forks, hands the locked file to the child and drops its
# own copy, so the lock is held exactly as long as the run's processes live, through a webhook crash too. A free
# lock and no `started` file prove that a launch cut off by a crash never started, so it can be launched again.
_WRAPPER = ': > started && "$@"; code=$?; echo "$code" > exit_status.tmp && mv exit_status.tmp exit_status'


def _lock_held(folder: Path) -> bool:
    try:
        fd = os.open(folder / "lock", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also lets go of the lock if this call got it
    return False


class LocalLauncher:
    name = "local"

    def __init__(self, ctloop_command: list[str], config_path: Path, runs_dir: Path, hidden_env: tuple[str, ...] = ()):
        self.command = ctloop_command
        self.config_path = config_path
        self.runs_dir = runs_dir
        self.hidden_env = hidden_env
        self._children: dict[str, subprocess.Popen] = {}

    def _folder(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def argv(self, trigger: Trigger) -> list[str]:
        args = _arguments(trigger)
        argv = [*self.command, "pipeline", "run", "--local", "--data", args["data_uri"],
                "--config", str(self.config_path)]  # fmt: skip
        if args["previous_statistics_uri"]:
            argv += ["--previous-statistics", args["previous_statistics_uri"]]
        if args["schema_uri"]:
            argv += ["--schema", args["schema_uri"]]
        return argv

    def launch(self, trigger: Trigger) -> str:
        run_id = f"local-{trigger.id}"
        folder = self._folder(run_id)
        folder.mkdir(parents=True, exist_ok=True)
        if self.find(trigger):
            return run_id
        argv = self.argv(trigger)
        (folder / "command.json").write_text(json.dumps({"argv": argv, "trigger": trigger.id}))
        # The pipeline gets the webhook's environment minus its secrets.
        env = {k: v for k, v in os.environ.items() if k not in self.hidden_env}
        env["PYTHONUNBUFFERED"] = "1"
        lock = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with (folder / "run.log").open("ab") as out:
                child = subprocess.Popen(["sh", "-c", _WRAPPER, "sh", *argv], cwd=folder, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         pass_fds=(lock,), start_new_session=True)  # fmt: skip
        except BlockingIOError:
            return run_id  # a process of this run holds the lock: it started
        except OSError as e:
            raise LaunchError(f"cannot start {argv[0]}: {e}") from None
        finally:
            os.close(lock)  # from here on only the child holds the lock
        self._children[run_id] = child
        return run_id

    def find(self, trigger: Trigger) -> str | None:
        run_id = f"local-{trigger.id}"
        folder = self._folder(run_id)
        return run_id if (folder / "started").exists() or _lock_held(folder) else None

    def state(self, run_id: str) -> RunState:
        folder = self._folder(run_id)
        child = self._children.get(run_id)
        if child is not None and child.poll() is not None:
            self._children.pop(run_id)  # reaped; the status file says how it ended
        if _lock_held(folder):
            return RunState.running
        # Read after the lock is found free: the status is written before the lock goes.
        status = folder / "exit_status"
        if status.exists():
            return RunState.succeeded if status.read_text().strip() == "0" else RunState.failed
        return RunState.failed  # its processes are gone without writing a status: killed


# ---------------------------------------------------------------------------------------------------------------
# KFP: kfp.Client through pipelines/submit.py.

_KFP_SA_TOKEN = "/var/run/secrets/kubeflow/pipelines/token"
_KFP_STATES = {"SUCCEEDED": RunState.succeeded, "FAILED": RunState.failed, "CANCELED": RunState.failed,
               "SKIPPED": RunState.failed}  # fmt: skip


class KfpLauncher:
    name = "kfp"

    def __init__(self, host: str, namespace: str, experiment: str, config_path: Path, package: Path | None = None,
                 token: str | None = None, in_cluster: bool = False, service_account: str | None = None):  # fmt: skip
        self.host = host
        self.service_account = service_account
        self.namespace = namespace
        self.experiment = experiment
        self.config_path = config_path
        self.package = package
        self.token = token
        self.in_cluster = in_cluster
        self._client = None

    def _connect(self):
        from ctloop.pipelines import submit

        if self._client is None:
            self._client = submit.connect(self.host, self.namespace, self.token, self.in_cluster)
        return self._client

    def _call(self, what: str, fn):
        try:
            return fn(self._connect())
        except Exception as e:  # kfp and its generated client raise many kinds; all mean "try again later"
            self._client = None
            raise LaunchError(
                f"KFP {what} failed: {str(e).splitlines()[0][:300] if str(e) else type(e).__name__}"
            ) from e

    def launch(self, trigger: Trigger) -> str:
        from ctloop.pipelines import continuous_training as ct
        from ctloop.pipelines import submit

        arguments = {**_arguments(trigger), "config": ct.config_parameter(self.config_path)}
        package = self.package or ct.COMPILED
        done = self._call("run", lambda client: submit.run(client, self.host, package, self.experiment, arguments,
                                                           run_name=run_name(trigger),
                                                           service_account=self.service_account))  # fmt: skip
        return done.run_id

    def find(self, trigger: Trigger) -> str | None:
        def look(client):
            experiment_id = client.create_experiment(self.experiment).experiment_id  # returns the existing one
            predicate = {"key": "display_name", "operation": "EQUALS", "string_value": run_name(trigger)}
            found = client.list_runs(experiment_id=experiment_id, page_size=1,
                                     filter=json.dumps({"predicates": [predicate]}))  # fmt: skip
            return found.runs[0].run_id if found.runs else None

        return self._call("run look-up", look)

    def state(self, run_id: str) -> RunState:
        run = self._call("get_run", lambda client: client.get_run(run_id))
        return _KFP_STATES.get(str(run.state or "").upper(), RunState.running)


def for_settings(settings: Settings, config_path: Path, state_dir: Path) -> Launcher:
    """The launcher the settings ask for: mode kubernetes submits to KFP, mode local runs the local runner."""
    hidden = (settings.webhook.secret_env, settings.webhook.alertmanager_token_env)
    if settings.mode == Mode.kubernetes:
        if not settings.endpoints.kfp.host:
            raise ConfigError(
                str(config_path), [("endpoints.kfp.host", "mode kubernetes launches runs on KFP: set it")]
            )
        kfp = settings.endpoints.kfp
        # A bearer token from $KFP_TOKEN, else the projected service-account token KFP checks in multi-user installs.
        token = os.environ.get("KFP_TOKEN") or None
        token_file = Path(os.environ.get("KF_PIPELINES_SA_TOKEN_PATH", _KFP_SA_TOKEN))
        return KfpLauncher(kfp.host, kfp.namespace, kfp.experiment, config_path, token=token,
                           in_cluster=token is None and token_file.is_file(),
                           service_account=kfp.service_account)  # fmt: skip
    ctloop = Path(settings.local.venvs_dir) / "dev" / "bin" / "ctloop"
    return LocalLauncher([str(ctloop)], config_path, state_dir / "runs", hidden_env=hidden)
