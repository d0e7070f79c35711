"""train: XGBoost on the validated span, in the train image.

``spec`` declares the inputs and outputs, ``splits`` and ``executor`` do the work without kfp or MLflow,
``tracking`` records the MLflow run, ``__main__`` is the container's entry program; the KFP container component
is made from the declaration (``ctloop.components.kfp_component``).
"""
