"""Run by the train environment for the serve tests: trains a model folder the way the pipeline does and writes
rows with the scores and decisions train's own model code gives them, for the server to match.

    .venvs/train/bin/python tests/serve/make_model.py OUT_DIR
"""

import json
import sys
from pathlib import Path

from ctloop import config, model_format, policy
from ctloop.components.train import executor
from ctloop.local import demo_data

out = Path(sys.argv[1])
root = Path(__file__).resolve().parents[2]
settings = config.load(root / "ctloop.yaml", environ={})
demo_data.write_span(str(out / "span"), rows=5_000, seed=21)
result = executor.train(executor.Request(str(out / "span"), settings))
model_format.write(str(out / "model"), result.model.booster, result.model.spec, result.model.policy,
                   result.model.metadata)  # fmt: skip
features = [f["name"] for f in result.model.spec["features"]]
frame, _ = demo_data.generate(rows=1_000, seed=22)
frame.loc[0, "loan_amount"] = 900_000  # the large-loan rule can fire
scores = result.model.predict(frame)
decisions, rules = policy.decide(result.model.policy, scores, {c: frame[c].to_numpy() for c in features})
rows = json.loads(frame[features].to_json(orient="records"))
(out / "rows.json").write_text(json.dumps({"features": features, "rows": rows, "scores": scores.tolist(),
                                           "decisions": decisions.tolist(), "rules": rules.tolist()}))  # fmt: skip
