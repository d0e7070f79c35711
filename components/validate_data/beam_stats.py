"""Statistics with an Apache Beam pipeline, for data that does not fit in memory.

The runner and its options come straight from the command line (``--beam-arg=--runner=FlinkRunner`` ...).
DirectRunner is what the tests run; Flink, Spark and Dataflow take their usual pipeline options, and read
s3:// or gs:// through Beam's own filesystems (apache-beam[aws] or [gcp] in the image).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import apache_beam as beam
import tensorflow_data_validation as tfdv
from apache_beam.options.pipeline_options import PipelineOptions
from tensorflow_data_validation.coders import csv_decoder
from tfx_bsl.arrow import table_util

from ctloop import artifacts


def _beam_path(uri: str) -> str:
    """Beam reads file paths and its own URI schemes; file:// URIs become paths."""
    return str(artifacts.local_path(uri)) if uri.startswith("file:") else uri


def generate(ds, options: tfdv.StatsOptions, beam_args: list[str]):
    files = [_beam_path(f) for f in ds.files]
    columns = list(options.feature_allowlist)
    pipeline_options = PipelineOptions(beam_args)
    with tempfile.TemporaryDirectory(prefix="ctloop-stats-") as tmp:
        output = str(Path(tmp) / "stats.pb")
        if ds.format == "csv":
            # TFDV's own CSV source decodes types the same way as its in-memory path.
            header = list(ds.frame.columns)
            with beam.Pipeline(options=pipeline_options) as p:
                _ = (
                    p
                    | beam.Create(files)
                    | beam.io.ReadAllFromText(skip_header_lines=1)
                    | csv_decoder.DecodeCSV(column_names=header)
                    | tfdv.GenerateStatistics(options)
                    | tfdv.WriteStatisticsToBinaryFile(output)
                )
        else:
            with beam.Pipeline(options=pipeline_options) as p:
                _ = (
                    p
                    | beam.Create(files)
                    | beam.io.ReadAllFromParquetBatched(columns=columns)
                    # TFDV wants one list per example and column; this is the conversion its in-memory path uses.
                    | beam.FlatMap(lambda table: [table_util.CanonicalizeRecordBatch(b) for b in table.to_batches()])
                    | tfdv.GenerateStatistics(options)
                    | tfdv.WriteStatisticsToBinaryFile(output)
                )
        return tfdv.load_stats_binary(output)
