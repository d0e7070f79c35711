"""The human side of a validation: a Markdown summary and TFDV's HTML statistics view."""

from __future__ import annotations

from tensorflow_metadata.proto.v0 import statistics_pb2


def _feature_rows(stats: statistics_pb2.DatasetFeatureStatisticsList) -> list[str]:
    data = stats.datasets[0]
    rows = []
    for f in data.features:
        name = ".".join(f.path.step) or f.name
        if f.HasField("num_stats"):
            s = f.num_stats
            missing = s.common_stats.num_missing / max(data.num_examples, 1)
            shape = f"mean {s.mean:.4g}, sd {s.std_dev:.4g}, min {s.min:.4g}, max {s.max:.4g}"
        elif f.HasField("string_stats"):
            s = f.string_stats
            missing = s.common_stats.num_missing / max(data.num_examples, 1)
            top = ", ".join(v.value for v in s.top_values[:3])
            shape = f"{s.unique} values; top: {top}"
        else:
            missing, shape = 0.0, ""
        kind = statistics_pb2.FeatureNameStatistics.Type.Name(f.type).lower()
        rows.append(f"| `{name}` | {kind} | {missing:.1%} | {shape} |")
    return rows


def _figure_lines(figures: dict) -> list[str]:
    if not figures:
        return []
    labels = ", ".join(f"{k}: {v:.1%}" for k, v in (figures.get("label_shares") or {}).items())
    lines = [f"- exact duplicate rows: {figures.get('duplicate_share', 0.0):.2%}"]
    if figures.get("id_repeat_share") is not None:
        lines.append(f"- repeated ids: {figures['id_repeat_share']:.2%}")
    if labels:
        lines.append(f"- label shares: {labels}")
    # None or NaN: a column the leakage check could not judge (say, too few rows per category)
    association = {k: v for k, v in (figures.get("label_association") or {}).items() if v is not None and v == v}
    if association:
        column, value = max(association.items(), key=lambda kv: kv[1])
        lines.append(f"- strongest single-feature association with the label: `{column}` {value:.3f}")
    return lines


def markdown(result) -> str:
    verdict = "PASSED" if result.passed else f"FAILED: {len(result.errors)} error(s)"
    fp = result.fingerprint
    lines = [
        f"# Data validation: {verdict}",
        "",
        f"- rows: {fp.rows:,} in {fp.files} file(s); sha256 `{fp.sha256[:16]}…`",
        f"- schema: {result.schema_source}",
        f"- drift: {result.comparisons['drift']}",
        f"- skew: {result.comparisons['skew']}",
        f"- per segment: {result.comparisons['segments']}",
        f"- duplicates, labels, categories: {result.comparisons['span']}",
        *_figure_lines(result.figures),
        *[f"- note: {n}" for n in result.notes],
        "",
        "## Anomalies",
        "",
    ]
    if result.problems:
        lines += ["| feature | kind | severity | description |", "| --- | --- | --- | --- |"]
        lines += [f"| `{p.feature}` | {p.kind} | {p.severity} | {p.description} |" for p in result.problems]
    else:
        lines.append("None.")
    lines += ["", "## Features", "", "| feature | type | missing | shape |", "| --- | --- | --- | --- |"]
    lines += _feature_rows(result.statistics)
    return "\n".join(lines) + "\n"


def html(result) -> str:
    """TFDV's Facets statistics view, side by side with the previous span when there is one."""
    from tensorflow_data_validation.utils.display_util import get_statistics_html

    if result.previous is not None:
        view = get_statistics_html(result.statistics, result.previous, lhs_name="this span", rhs_name="previous span")
    else:
        view = get_statistics_html(result.statistics, lhs_name="this span")
    verdict = "passed" if result.passed else f"failed with {len(result.errors)} error(s)"
    return f"<h2>Data validation {verdict}</h2>\n{view}"
