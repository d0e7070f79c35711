"""Artifact URIs: read, write, list and atomically replace objects under file:// and s3:// URIs.

A plain path is a file URI. s3:// goes through boto3 with its usual credential chain; the endpoint for
MinIO or another S3-protocol server comes from ``configure(s3_endpoint_url=...)`` (ctloop.yaml's
``endpoints.artifact_store.s3_endpoint_url``) or, failing that, boto3's own ``AWS_ENDPOINT_URL``.

Writes never leave half an object behind: a file is written beside its target and renamed over it,
and an S3 PUT is atomic by itself.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from ctloop.errors import AccessError, BadInputError, CtloopError, NotFoundError

__all__ = ["configure", "exists", "join", "list_uris", "local_path", "read_bytes", "store_for", "write_bytes"]

SCHEMES = ("file", "s3")


class Store(Protocol):
    def read_bytes(self, uri: str) -> bytes: ...
    def write_bytes(self, uri: str, data: bytes) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def exists(self, uri: str) -> bool: ...


def _scheme(uri: str) -> str:
    if not uri:
        raise BadInputError("artifact URI is empty")
    scheme = urlsplit(uri).scheme
    if scheme == "" or len(scheme) == 1:  # a plain path; one letter is a Windows drive
        return "file"
    if scheme not in SCHEMES:
        raise BadInputError(f"{uri}: unsupported URI scheme {scheme!r} (use one of: {', '.join(SCHEMES)}, or a path)")
    return scheme


def join(base: str, *parts: str) -> str:
    """Child URI of ``base``: works the same for paths, file:// and s3:// URIs."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def local_path(uri: str) -> Path:
    """The filesystem path of a path or file:// URI."""
    if _scheme(uri) != "file":
        raise BadInputError(f"{uri}: not a local path or file:// URI")
    if uri.startswith("file:"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise BadInputError(f"{uri}: file URIs must name a local path (file:///abs/path)")
        return Path(unquote(parts.path))
    return Path(uri)


class FileStore:
    def read_bytes(self, uri: str) -> bytes:
        path = local_path(uri)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"{uri}: no such file") from None
        except IsADirectoryError:
            raise BadInputError(f"{uri}: is a folder, not a file") from None
        except PermissionError:
            raise AccessError(f"{uri}: permission denied") from None

    def write_bytes(self, uri: str, data: bytes) -> None:
        path = local_path(uri)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
        except PermissionError:
            raise AccessError(f"{uri}: permission denied") from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            # An interrupted write (including Ctrl-C) leaves neither a partial target nor the temporary file.
            Path(tmp).unlink(missing_ok=True)
            raise

    def list(self, prefix: str) -> list[str]:
        root = local_path(prefix)
        if root.is_file():
            return [str(root)] if not prefix.startswith("file:") else [root.as_uri()]
        if not root.is_dir():
            return []
        files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".part"))
        if prefix.startswith("file:"):
            return [p.as_uri() for p in files]
        return [str(p) for p in files]

    def exists(self, uri: str) -> bool:
        return local_path(uri).exists()


class S3Store:
    def __init__(self, endpoint_url: str | None = None, client=None):
        self._endpoint_url = endpoint_url
        self._client = client

    @property
    def client(self):
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise CtloopError("s3:// URIs need boto3, which is not installed in this environment") from None
            # A session of its own: boto3's default session caches credentials across configure() calls.
            self._client = boto3.session.Session().client("s3", endpoint_url=self._endpoint_url)
        return self._client

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        parts = urlsplit(uri)
        if not parts.netloc:
            raise BadInputError(f"{uri}: an s3 URI needs a bucket (s3://bucket/key)")
        return parts.netloc, parts.path.lstrip("/")

    def _call(self, uri: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return fn(**kwargs)
        except NoCredentialsError:
            raise AccessError(
                f"{uri}: no S3 credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile)"
            ) from None
        except ClientError as e:
            code = str(e.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NoSuchBucket", "NotFound"):
                what = "no such bucket" if code == "NoSuchBucket" else "no such object"
                raise NotFoundError(f"{uri}: {what}") from None
            if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise AccessError(f"{uri}: access denied ({code})") from None
            raise CtloopError(f"{uri}: S3 error {code}: {e}") from None
        except BotoCoreError as e:
            raise CtloopError(f"{uri}: S3 request failed: {e}") from None

    def read_bytes(self, uri: str) -> bytes:
        bucket, key = self._split(uri)
        response = self._call(uri, self.client.get_object, Bucket=bucket, Key=key)
        return response["Body"].read()

    def write_bytes(self, uri: str, data: bytes) -> None:
        bucket, key = self._split(uri)
        if not key or key.endswith("/"):
            raise BadInputError(f"{uri}: an object key is needed to write")
        self._call(uri, self.client.put_object, Bucket=bucket, Key=key, Body=data)

    def list(self, prefix: str) -> list[str]:
        bucket, key = self._split(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        folder = key if not key or key.endswith("/") else key + "/"
        out: list[str] = []
        for candidate in dict.fromkeys((key, folder)):
            pages = self._call(prefix, lambda p=candidate: list(paginator.paginate(Bucket=bucket, Prefix=p)))
            keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
            # "s3://b/span" lists the object itself or what lies under "span/", never "span-2/...".
            out += [f"s3://{bucket}/{k}" for k in keys if k == key or k.startswith(folder)]
        return sorted(set(out))

    def exists(self, uri: str) -> bool:
        bucket, key = self._split(uri)
        try:
            self._call(uri, self.client.head_object, Bucket=bucket, Key=key)
            return True
        except NotFoundError:
            return bool(self.list(uri))


_stores: dict[str, Store] = {"file": FileStore(), "s3": S3Store()}


def configure(s3_endpoint_url: str | None = None, s3_client=None) -> None:
    """Set the S3 endpoint (MinIO) or inject a client; called once per process from the loaded settings."""
    _stores["s3"] = S3Store(endpoint_url=s3_endpoint_url, client=s3_client)


def store_for(uri: str) -> Store:
    return _stores[_scheme(uri)]


def read_bytes(uri: str) -> bytes:
    return store_for(uri).read_bytes(uri)


def write_bytes(uri: str, data: bytes) -> None:
    """Write ``data`` to ``uri``, replacing what was there in one step."""
    store_for(uri).write_bytes(uri, data)


def list_uris(prefix: str) -> list[str]:
    """Every object at or under ``prefix``, sorted."""
    return store_for(prefix).list(prefix)


def exists(uri: str) -> bool:
    return store_for(uri).exists(uri)
