"""The KFP container component of select_trial. Imports kfp: used where pipelines are compiled.

No `from __future__ import annotations` here: kfp reads the parameter annotations as objects.
"""

from kfp import dsl

from ctloop.components.select_trial import spec


def make(image: str):
    @dsl.container_component
    def select_trial(
        metrics: list[float],
        trials: list[str],
        best_params: dsl.OutputPath(str),
        best_metric: dsl.OutputPath(float),
    ):
        """Pick the hyper-parameter trial with the best validation metric."""
        return dsl.ContainerSpec(
            image=image,
            command=spec.ENTRY,
            args=["--metrics", metrics, "--trials", trials, "--best-params-out", best_params,
                  "--best-metric-out", best_metric],
        )  # fmt: skip

    return select_trial
