"""Which way the dependencies point (docs/layout.md): rooms use the core and the contracts, never each other's
internals; nothing that goes into an image imports the local world; the contracts load in every image."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Folder -> its import name, as setup.py mounts them.
ROOMS = {"src/ctloop": "ctloop", "components": "ctloop.components", "services": "ctloop.services",
         "pipelines": "ctloop.pipelines", "local": "ctloop.local", "monitoring": "ctloop.monitoring"}  # fmt: skip
SHIPPED = ("src/ctloop", "components", "services", "pipelines")  # what images install


def modules(folder: str) -> dict[str, Path]:
    base = ROOMS[folder]
    out = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        parts = path.relative_to(ROOT / folder).with_suffix("").parts
        parts = parts[:-1] if parts[-1] == "__init__" else parts
        out[".".join((base, *parts))] = path
    return out


def imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Modules ``path`` imports (``from a import b`` counts as a.b too); with ``top_level_only``, only those imported
    when the module itself is (not inside functions)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_the_module_map_sees_every_room():
    found = {name for folder in ROOMS for name in modules(folder)}
    assert {"ctloop.contracts.seldon", "ctloop.local.cli", "ctloop.services.rollout_controller.machine",
            "ctloop.components.deploy.executor", "ctloop.local.gateway.app"} <= found  # fmt: skip


@pytest.mark.parametrize("folder", SHIPPED)
def test_nothing_an_image_runs_imports_the_local_world(folder):
    offenders = {name: sorted(i for i in imports(path) if i.startswith("ctloop.local"))
                 for name, path in modules(folder).items()}  # fmt: skip
    assert {name: found for name, found in offenders.items() if found} == {}


@pytest.mark.parametrize("room", ["components", "services"])
def test_rooms_do_not_reach_into_each_other(room):
    """A component or service imports the core, the contracts and itself; a hand-off it shares with another room
    belongs in ctloop.contracts."""
    base = ROOMS[room]
    offenders = {}
    for name, path in modules(room).items():
        own = name.split(".")[2] if name.count(".") >= 2 else None
        for imported in imports(path):
            parts = imported.split(".")
            # another room's package (not a module all rooms share, such as components/declaration.py)
            other = imported.startswith(base + ".") and len(parts) > 2 and parts[2] != own
            if other and (ROOT / room / parts[2]).is_dir():
                offenders.setdefault(name, []).append(imported)
    assert offenders == {}


ALLOWED_AT_IMPORT = {"__future__", "pydantic", "yaml", "ctloop"}


def test_contracts_load_with_nothing_but_the_standard_library_pyyaml_and_pydantic_v1():
    offenders = {}
    for name, path in modules("src/ctloop").items():
        if not name.startswith("ctloop.contracts"):
            continue
        for imported in imports(path, top_level_only=True):
            top = imported.split(".")[0]
            if top in sys.stdlib_module_names or top in ALLOWED_AT_IMPORT:
                if top == "pydantic" and not imported.startswith("pydantic.v1"):
                    offenders.setdefault(name, []).append(imported)  # the watch image has pydantic 1.10
                if top == "ctloop" and not imported.startswith(("ctloop.contracts", "ctloop.errors")):
                    offenders.setdefault(name, []).append(imported)
                continue
            offenders.setdefault(name, []).append(imported)
    assert offenders == {}


def test_every_http_service_serves_through_the_shared_set_up():
    """One uvicorn set-up (ctloop.services.http_server: its keep-alive outlives pooled clients'), used by every
    service's entry program and the local gateway alike."""
    calls = {}
    for folder in ("services", "local"):
        for name, path in modules(folder).items():
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call) and ast.unparse(node.func) in ("uvicorn.run", "serve"):
                    calls.setdefault(ast.unparse(node.func), set()).add(name)
    assert calls["uvicorn.run"] == {"ctloop.services.http_server"}
    entries = {f"ctloop.services.{s}.__main__" for s in ("drift_watcher", "retrain_webhook", "rollout_controller")}
    assert entries | {"ctloop.local.gateway.__main__"} <= calls["serve"]
