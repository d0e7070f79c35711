"""The local world: ctloop on one machine, for developing, trying and demonstrating the loop. Never in an image.

``cli`` (the ``ctloop`` command), ``environments`` (the per-image environments ``make setup`` builds, which run
each image's code here), ``runner`` and ``progress`` (the compiled pipeline run on this machine), ``stack`` (the
local stack: MLflow, Prometheus, the gateway, the webhook, the watcher, the rollout controller), ``gateway`` (the
stand-in for Seldon's ingress and executor), ``demo``, ``demo_data``, ``traffic`` and ``loop_report`` (the story
``ctloop demo`` plays, its data, its clients and its report).

It imports the core, the contracts and the rooms; nothing outside it imports it (a test keeps it so). It finds
its files through the installed packages, never through the repository's layout, so every command works from
any folder that holds a ctloop.yaml.
"""
