"""The loop's clock at demo scale (dev environment): `ctloop demo` on its own ports and state folder, then the
times from drift onset to detection, to the retrain's candidate being registered, to the candidate serving (as the
shadow) and to its promotion, with the client requests that failed during each update (the target is none).

python bench/loop.py --out bench/results
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from common import free_port, write

ROOT = Path(__file__).resolve().parents[1]
PORTS = ("mlflow", "prometheus", "gateway", "webhook", "watcher", "rollout")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="bench/results")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ctloop-bench-loop-"))
    raw = yaml.safe_load((ROOT / "ctloop.yaml").read_text())
    ports = {name: free_port() for name in PORTS}
    raw["local"].update(state_dir=str(tmp / "state"), venvs_dir=str(ROOT / ".venvs"),
                        **{f"{name}_port": port for name, port in ports.items()})  # fmt: skip
    raw["endpoints"]["mlflow"]["tracking_uri"] = f"http://127.0.0.1:{ports['mlflow']}"
    raw["endpoints"]["prometheus"]["url"] = f"http://127.0.0.1:{ports['prometheus']}"
    raw["endpoints"]["seldon"] = {"namespace": "ctloop", "url": f"http://127.0.0.1:{ports['gateway']}"}
    raw["endpoints"]["webhook"] = {"url": f"http://127.0.0.1:{ports['webhook']}"}
    raw["endpoints"]["watcher"] = {"url": f"http://127.0.0.1:{ports['watcher']}"}
    raw["endpoints"]["artifact_store"]["root"] = str(tmp / "artifacts")
    config = tmp / "ctloop.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp / "demo"
    result = subprocess.run([sys.executable, "-m", "ctloop.local.cli", "demo", "-c", str(config), "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    clock = summary["clock"]
    onset = clock.get("drift_onset")
    steps = ("drift_detected", "candidate_registered", "candidate_serving", "promoted")
    rows = [[name.replace("_", " "), f"{clock[name] - onset:.0f} s"] for name in steps if name in clock and onset]
    tallies = summary["traffic"]
    lines = [
        "## From drift onset (20 client requests/s; the default sequential detector: the last 500 tested every 100)",
        "",
        "| to | after |",
        "| --- | --- |",
        *[f"| {a} | {b} |" for a, b in rows],
        "",
        "## Client requests per phase (answered / failed)",
        "",
        "| phase | answered | failed |",
        "| --- | --- | --- |",
        *[f"| {phase} | {t['ok']} | {t['failed']} |" for phase, t in tallies.items()],
        "",
        f"Story {'completed' if summary['ok'] else 'FAILED: ' + str(summary['error'])}; "
        f"exit status {result.returncode}.",
    ]
    write(Path(args.out), "loop", "The loop's clock (ctloop demo)", [], table=lines,
          extra={"clock": clock, "traffic": tallies, "ok": summary["ok"]})  # fmt: skip


if __name__ == "__main__":
    main()
