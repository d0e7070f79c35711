"""How ctloop's HTTP services serve their ASGI apps: one uvicorn set-up for the drift watcher, the retrain webhook,
the rollout controller (and the local stack's gateway)."""

from __future__ import annotations

# A pooled client reuses an idle connection until its own idle limit; a server that closes idle connections sooner
# races the client's next request on one, which then fails with a reset. uvicorn closes them after 5 s; Go's
# default transport keeps them 90 s, load balancers commonly 60 s. The server keeps them longer, so the client
# closes first.
KEEP_ALIVE_S = 120


def serve(app, host: str, port: int) -> None:
    """Serve ``app`` until a signal stops it."""
    import uvicorn  # in the images with a service only (watch, control), not in every one that has this package

    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_keep_alive=KEEP_ALIVE_S)
