"""deploy: a registered, blessed version becomes the candidate of the SeldonDeployment (shadow, or canary at
weight 0) for the rollout controller to take from there; the first deployment serves it as main directly."""
