"""validate_data: the first gate of the continuous-training pipeline (TensorFlow Data Validation).

``spec`` declares the inputs and outputs, ``executor`` is the work as a plain function, ``__main__`` the container's
entry program; the KFP container component is made from the declaration (``ctloop.components.kfp_component``,
which imports kfp: used where pipelines are compiled, never inside the validate image).
"""
