"""The controller's HTTP side: GET /healthz, /readyz, /metrics and /v1/rollouts/<namespace>/<name>; the loop runs
in a background thread for the life of the app."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ctloop.contracts import rollout as rollout_status
from ctloop.errors import CtloopError
from ctloop.services.rollout_controller.controller import Controller


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=code)


def build(controller: Controller, tick_s: float | None = None) -> Starlette:
    stop = threading.Event()

    async def healthz(request):
        return JSONResponse({"status": "ok"})

    async def readyz(request):
        # Ready once the deployment target has answered (a status was read, or the object is known to be absent).
        if controller.ticks == 0:
            return _error(503, f"not ready: {controller.last_error or 'first tick pending'}")
        return JSONResponse({"status": "ready", "last_error": controller.last_error})

    async def metrics(request):
        return Response(generate_latest(controller.metrics.registry), media_type="text/plain; version=0.0.4")

    async def rollout(request):
        namespace, name = request.path_params["namespace"], request.path_params["name"]
        if (namespace, name) != (controller.namespace, controller.name):
            return _error(404, f"{namespace}/{name} is not managed here ({controller.namespace}/{controller.name})")
        try:
            sdep = await asyncio.to_thread(controller.target.get, namespace, name)
        except CtloopError as e:
            return _error(e.status_code, str(e))
        if sdep is None:
            return _error(404, f"no SeldonDeployment {namespace}/{name}")
        body = json.loads(rollout_status.read(sdep).to_json())
        body["last_error"] = controller.last_error
        return JSONResponse(body)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        thread = threading.Thread(target=controller.run, args=(stop.is_set, tick_s), daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            await asyncio.to_thread(thread.join, 30)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/v1/rollouts/{namespace}/{name}", rollout),
        ],
        lifespan=lifespan,
    )
