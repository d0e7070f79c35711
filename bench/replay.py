"""Replays entry programs in one process (bench/pipeline.py's comparator): imports once, then times each call.

python bench/replay.py CALLS_JSON    # [{"task": ..., "module": ..., "argv": [...]}, ...]; prints JSON timings
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import sys
import time
from pathlib import Path


def main() -> None:
    calls = json.loads(Path(sys.argv[1]).read_text())
    modules = {c["module"]: importlib.import_module(f"{c['module']}.__main__") for c in calls}
    for module in modules.values():  # warm: the heavy imports (TFDV, xgboost, mlflow) happen here
        for name in ("executor", "tracking"):
            with contextlib.suppress(ImportError):
                importlib.import_module(module.__name__.rsplit(".", 1)[0] + "." + name)
    out = []
    for call in calls:
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = modules[call["module"]].main(call["argv"])
        out.append({"task": call["task"], "seconds": time.perf_counter() - start, "exit": code})
    print(json.dumps(out))


if __name__ == "__main__":
    main()
