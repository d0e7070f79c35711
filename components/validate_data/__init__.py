"""validate_data: the first gate of the continuous-training pipeline (TensorFlow Data Validation).

``spec`` names the inputs and outputs, ``dataset`` reads a span, ``executor`` is the work as a plain function,
``__main__`` the container's entry program, ``component`` the KFP container component (imports kfp; used where
pipelines are compiled, never inside the validate image).
"""
