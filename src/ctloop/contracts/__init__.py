"""The loop's hand-offs, each declared once: what one part of ctloop gives another. Producers and consumers import
these modules; nothing else defines the formats, names and rules below.

| module | hand-off | producer | consumers |
| --- | --- | --- | --- |
| ``span`` | a span's URI and content fingerprint | validate_data | train, register, the webhook, the watcher |
| ``verdicts`` | the data verdict and the blessing | validate_data, validate_segments | register, people |
| ``registry`` | aliases, version tags, MLflow errors | register, deploy, rollouts | validate_segments, watcher |
| ``seldon`` | the SeldonDeployment: predictors, logger URL | deploy, rollouts | gateway, watcher, checks |
| ``rollout`` | the rollout's status, phases, outcomes | rollouts, deploy | ``ctloop rollout``, metrics, alerts |
| ``seldon_message`` | requests, answers and feedback | clients, the model server | the model server, the watcher |
| ``cloudevents`` | the request logger's events | Seldon's executor, the local gateway | the watcher |
| ``retrain`` | the retrain request and its sender | the watcher, ``ctloop retrain`` | the retrain webhook |
| ``signing`` | HMAC signatures of webhook requests | senders of retrain requests | the retrain webhook |
| ``serving_data`` | where production traffic is kept | the watcher | validate_data (skew), retrains |

Every module imports in every image: the standard library, pyyaml and ``pydantic.v1`` only, and anything else
(mlflow, httpx, ctloop.artifacts) where a function needs it.
"""
