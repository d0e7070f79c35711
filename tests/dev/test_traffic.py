"""The demo's traffic client and the local gateway's server: who drops an idle connection first."""

from ctloop.local import traffic
from ctloop.services import http_server


def test_the_client_drops_an_idle_connection_before_the_gateways_server_closes_it():
    # At equal timeouts, a request sent on a connection the server is closing fails with a ReadError (two of 7,292
    # demo requests once, when both were 5 s); the local gateway serves through the services' shared set-up
    # (local/gateway/__main__.py), whose keep-alive tests/control/test_http_server.py holds over a socket.
    assert http_server.KEEP_ALIVE_S > traffic.KEEPALIVE_S
