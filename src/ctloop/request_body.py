"""A request body read under a size limit, for the services' Starlette apps (the webhook's and the watcher's)."""

from __future__ import annotations

from ctloop.errors import TooLargeError


async def read_limited(request, limit: int, setting: str) -> bytes:
    """The body of a Starlette ``request``, refused with a TooLargeError (413) as soon as it is known to pass
    ``limit`` bytes: from Content-Length before a byte is read, or while a chunked body streams in, so that no
    sender makes the service hold more than the limit. ``setting`` names where the limit comes from."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise TooLargeError(f"body: {declared} bytes, at most {limit} accepted ({setting})")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLargeError(f"body: more than {limit} bytes, at most {limit} accepted ({setting})")
        chunks.append(chunk)
    return b"".join(chunks)
