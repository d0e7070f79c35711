"""The drift watcher's ingestion token: who may post CloudEvents to ``POST /v1/events``.

Seldon 1.17's request logger sets no credentials of its own, but it posts to the logger URL with Go's HTTP client,
which sends a URL's user information as HTTP Basic credentials; httpx (the local gateway) does the same. So the
token rides in the logger URL the deploy step writes (``http://ctloop:<token>@<watcher>/v1/events``), and the
watcher takes it as the Basic password or as a bearer token (a person with curl).

The token comes from the environment variable ``endpoints.watcher.token_env`` (the watcher, the local deploy step)
or, on a cluster, from the key ``ingest-token`` of the Secret ``endpoints.watcher.token_secret`` (the deploy step
reads it through the Kubernetes API); never from ctloop.yaml.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
from urllib.parse import urlsplit, urlunsplit

from ctloop.errors import BadInputError

__all__ = ["SECRET_KEY", "USER", "authorized", "check", "read", "with_token"]

USER = "ctloop"
SECRET_KEY = "ingest-token"
# URL-safe characters only (secrets.token_urlsafe's alphabet and '.', '~'), so that the token goes into the URL's
# user information unescaped and every client sends it back the same.
_TOKEN = re.compile(r"[A-Za-z0-9._~-]{16,256}")


def check(token: str, where: str) -> str:
    if not _TOKEN.fullmatch(token or ""):
        raise BadInputError(f"{where}: the watcher's ingestion token must be 16 to 256 characters of "
                            "A-Z a-z 0-9 . _ ~ - (for example `openssl rand -hex 32`)")  # fmt: skip
    return token


def read(env_var: str, environ=None) -> str:
    """The token from the environment (a Kubernetes Secret in the cluster)."""
    return check((os.environ if environ is None else environ).get(env_var, ""), env_var)


def with_token(url: str, token: str) -> str:
    """``url`` with the token as its user information."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{USER}:{token}@{host}"))


def authorized(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header carries ``token``: ``Bearer <token>`` or Basic with it as the password."""
    scheme, _, given = (authorization or "").strip().partition(" ")
    given = given.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(given, validate=True).decode("ascii")
        except ValueError:  # not base64, not ASCII (binascii.Error and UnicodeDecodeError are ValueErrors)
            return False
        given = decoded.partition(":")[2]
    elif scheme.lower() != "bearer":
        return False
    # ASCII only: compare_digest refuses other text with a TypeError, which would answer 500 instead of 401.
    return given.isascii() and hmac.compare_digest(given, token)
