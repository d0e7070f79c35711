"""model_server: serves a ctloop model folder with Seldon Core's Python wrapper (serve image).

``scoring`` is the model logic on numpy arrays and knows nothing of the server; ``seldon_model`` is the thin
class `seldon-core-microservice` runs.
"""
