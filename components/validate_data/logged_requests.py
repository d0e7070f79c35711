"""The requests the drift watcher logged, read for skew, and the rows of the span they are compared with.

Skew asks whether the examples the model is asked about are the examples it learnt from. A span of three months
and one day of requests differ wherever a feature follows the calendar (the weekday, the season) though nothing is
wrong with either: ISLP's Bikeshare, months 4 to 6 against the requests of 29 June, stopped on both. So:

- a folder of ``date=<day>`` folders (the watcher's, ``ctloop.contracts.serving_data``) is read for at most a week
  of days, each weekday once: the newest days within the span's days where the span has a timestamp
  (``data.timestamp``), else the newest days;
- where the span has a timestamp and the logged rows their ``time`` (when the request was logged, as the watcher
  writes it), the requests of the days both hold are compared with the span's rows of those same days. In a loop
  these are the same events, once as served and once as labelled, which is what skew is about;
- otherwise the requests are compared with the whole span, and the skew line says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ctloop import datasets
from ctloop.config import Settings
from ctloop.contracts import serving_data

WEEK = 7  # days of requests read at most: every weekday once, and memory bounded by a week of traffic


@dataclass
class Logged:
    frame: pd.DataFrame  # every logged row read (answers and ids beside the features)
    compared: pd.DataFrame  # the rows of it that skew is measured on
    span_rows: pd.DataFrame | None  # the span's rows they are compared with; None: the whole span
    said: str  # which days, and against what, for the skew line; empty for a plain folder of requests


def _days_of_span(span: pd.DataFrame, settings: Settings) -> pd.Series | None:
    """The UTC day of each row of the span, by data.timestamp; None where the span has no timestamp."""
    column = settings.data.timestamp
    if not column or column not in span.columns:
        return None
    when = pd.to_datetime(span[column], utc=True, errors="coerce")
    return when.dt.strftime("%Y-%m-%d")


def _days_of_requests(frame: pd.DataFrame) -> pd.Series | None:
    """The UTC day each logged row was logged on (its ``time``, seconds since the epoch); None where not told."""
    if "time" not in frame.columns:
        return None
    seconds = pd.to_numeric(frame["time"], errors="coerce")
    return pd.to_datetime(seconds, unit="s", utc=True, errors="coerce").dt.strftime("%Y-%m-%d")


def _between(days: list[str]) -> str:
    return days[0] if len(days) == 1 else f"{days[0]}..{days[-1]}"


def read(uri: str, span: pd.DataFrame, settings: Settings) -> Logged:
    """The logged requests at ``uri`` and what they are compared with; BadInputError where they cannot be read."""
    span_days = _days_of_span(span, settings)
    in_span = set() if span_days is None else set(span_days.dropna())
    folders = serving_data.days(uri)
    said = ""
    if folders:
        inside = [day for day in folders if day in in_span]
        picked = (inside or list(folders))[-WEEK:]
        frame = pd.concat([datasets.read(folders[day], "parquet").frame for day in picked], ignore_index=True)
        said = f"; the requests of {_between(picked)}"
    else:
        frame = datasets.read(uri, "parquet").frame
    logged_days = _days_of_requests(frame)
    shared = sorted(in_span & set(logged_days.dropna())) if logged_days is not None else []
    if shared:
        compared, span_rows = frame[logged_days.isin(shared)], span[span_days.isin(shared)]
        said += (
            f"; its {len(compared):,} rows of {_between(shared)} against this span's {len(span_rows):,} rows of the "
            "same days"
        )
        return Logged(frame, compared, span_rows, said)
    if said or span_days is not None:
        why = (
            "this span has no timestamp (data.timestamp)"
            if span_days is None
            else "the logged rows say no time"
            if logged_days is None
            else "no day of the logged requests is in this span"
        )
        said += f"; against the whole span: {why}"
    return Logged(frame, frame, None, said)
