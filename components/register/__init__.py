"""register: a blessed model becomes a version of the MLflow registered model, with lineage, alias `candidate`.

Refuses to act without a positive blessing; idempotent per training run.
"""
