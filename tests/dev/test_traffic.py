"""The demo's traffic client and the local gateway's server: who drops an idle connection first."""

import uvicorn

from ctloop.local import traffic


def test_the_client_drops_an_idle_connection_before_the_gateways_server_closes_it():
    # At equal timeouts, a request sent on a connection the server is closing fails with a ReadError; the local
    # gateway runs uvicorn with its default keep-alive timeout (local/gateway/__main__.py).
    assert uvicorn.Config(app=None).timeout_keep_alive > traffic.KEEPALIVE_S
