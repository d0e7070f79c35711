"""A tiny Seldon model class for the serve smoke test: it doubles its input.

seldon-core-microservice imports it as `echo_model.EchoModel` from its working directory (tests/serve).
"""

import numpy as np


class EchoModel:
    def __init__(self) -> None:
        self.calls = 0

    def predict(self, X, features_names=None):
        self.calls += 1
        return np.asarray(X, dtype=float) * 2

    def metrics(self):
        # Custom metrics are how a model shows up on the wrapper's metrics port.
        return [{"type": "COUNTER", "key": "ctloop_echo_predictions", "value": 1}]

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        return []
