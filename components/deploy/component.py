"""The KFP container component of deploy. Imports kfp: used where pipelines are compiled.

No `from __future__ import annotations` here: kfp reads the parameter annotations as objects.
"""

from kfp import dsl

from ctloop.components.deploy import spec


def make(image: str):
    """The component, running ``image`` (the control image, with its registry and tag)."""

    @dsl.container_component
    def deploy(config: str, model_version: str, model_uri: str, action: dsl.OutputPath(str)):
        """Declare the registered version as the SeldonDeployment's candidate; the rollout controller takes over."""
        return dsl.ContainerSpec(
            image=image,
            command=spec.ENTRY,
            args=[
                "--config-yaml", config,
                "--model-version", model_version,
                "--model-uri", model_uri,
                "--action-out", action,
            ],
        )  # fmt: skip

    return deploy
