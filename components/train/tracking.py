"""The MLflow run of a training: parameters, metrics, the dataset with ctloop's own digest, lineage tags."""

from __future__ import annotations

from ctloop import mlflow_client, provenance


def log_run(settings, request, result, pipeline_run_id: str | None = None) -> str:
    import mlflow

    mlflow_client.connect(settings)
    mlflow.set_experiment(settings.name)
    fp = result.fingerprint
    with mlflow.start_run(run_name=f"train-{fp.sha256[:8]}") as run:
        # eval_metric is a list; MLflow parameters are strings.
        mlflow.log_params({k: ",".join(v) if isinstance(v, list) else v for k, v in result.params.items()})
        mlflow.log_metrics({f"test_{k}": float(v) for k, v in result.metrics.items()})
        mlflow.log_metric("validation_metric", result.validation_metric)
        mlflow.log_metric("best_iteration", result.model.metadata["best_iteration"])
        # MLflow's own digest looks at the first 10,000 rows only; the span's content hash covers every byte.
        dataset = mlflow.data.from_pandas(
            result.frame,
            source=request.data_uri,
            targets=settings.data.label,
            name=settings.name,
            digest=fp.sha256[:32],
        )
        mlflow.log_input(dataset, context="training")
        tags = {
            "ctloop.code_version": provenance.code_version(),
            "ctloop.image_lock_sha256": provenance.image_lock_sha256() or "unknown",
            "ctloop.dataset_uri": request.data_uri,
            "ctloop.dataset_sha256": fp.sha256,
            "ctloop.dataset_rows": str(fp.rows),
        }
        if pipeline_run_id:
            tags["ctloop.pipeline_run_id"] = pipeline_run_id
        mlflow.set_tags(tags)
        return run.info.run_id
