"""The services' shared HTTP server set-up (ctloop.services.http_server), run as the entry programs run it: in a
process of its own, over a real socket."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import uvicorn

# A bare ASGI app, so that only the server's own behaviour is under test.
APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})
"""


@pytest.fixture
def server(free_port):
    port = free_port()
    code = f"{APP}\nfrom ctloop.services.http_server import serve\nserve(app, '127.0.0.1', {port})"
    process = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
    yield port
    process.terminate()
    process.wait(timeout=30)


def get(conn: socket.socket) -> bytes:
    conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = b""
    while not answer.endswith(b"ok"):
        chunk = conn.recv(4096)
        if not chunk:  # the server closed the connection
            return answer
        answer += chunk
    return answer


def test_an_idle_kept_alive_connection_outlives_uvicorns_default_keep_alive(server):
    """A pooled client (Go's transport keeps idle connections 90 s) sends its next request on a connection that has
    been idle; uvicorn's default closes it after 5 s, and a request sent as it closes fails. Here the idle time is
    the input: one second past uvicorn's default, the same connection still answers."""
    idle = uvicorn.Config(app=None).timeout_keep_alive + 1
    with socket.create_connection(("127.0.0.1", server), timeout=30) as conn:
        assert get(conn).startswith(b"HTTP/1.1 200")
        time.sleep(idle)
        assert get(conn).startswith(b"HTTP/1.1 200")
