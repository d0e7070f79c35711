"""The rollout controller (control image): moves a declared candidate through shadow and canary steps on the
SeldonDeployment, judged by PromQL checks, then promotes it (MLflow's champion alias moves) or rolls it back."""
