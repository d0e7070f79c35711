"""The gateway's HTTP side: Seldon's external paths, traffic split by weight, shadows mirrored without touching
the live answer, CloudEvents to the request logger, and Seldon's executor metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
import uuid
from pathlib import Path

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ctloop import metric_names
from ctloop.contracts import cloudevents, seldon_message
from ctloop.deployment_target import LocalTarget
from ctloop.errors import TooLargeError
from ctloop.local.gateway.predictors import Endpoint, Pool
from ctloop.request_body import read_limited

log = logging.getLogger(__name__)


async def send_event(client: httpx.AsyncClient, url: str, body: bytes, event_headers: dict[str, str]) -> None:
    """Posts one CloudEvent to a request logger, at most once as Seldon's executor does (the watcher tolerates
    gaps): a failure is logged, not retried."""
    try:
        await client.post(url, content=body, headers=event_headers, timeout=5.0)
    except httpx.HTTPError as e:
        log.warning("request logger %s: %s", url, e)


_PUID = re.compile(r"[\x21-\x7e]{1,128}")


class RequestLogger:
    """CloudEvents to request loggers from a bounded queue, sent by a few workers on a client of their own, as
    Seldon's executor does (a buffered work queue and a fixed number of logger workers).

    Why not a task per event: when the logger is slower than the traffic for a while, tasks pile up behind the
    connection pool, and httpx's pool spends time in proportion to its waiting requests on every request it
    serves; the gateway then spends its core on the pool, answers predictions late, and never catches up. Here
    at most ``workers`` events are in flight and a burst waits in the queue; a full queue drops the event
    (counted and logged: the watcher tolerates gaps), never a prediction."""

    def __init__(self, workers: int = 5, capacity: int = 10_000):
        self.workers, self.queue = workers, asyncio.Queue(capacity)
        self.dropped = 0
        self.client: httpx.AsyncClient | None = None
        self.tasks: list[asyncio.Task] = []

    def put(self, url: str, body: bytes, event_headers: dict[str, str]) -> None:
        try:
            self.queue.put_nowait((url, body, event_headers))
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                log.warning("request logger queue full (%d events): %d events dropped so far",
                            self.queue.maxsize, self.dropped)  # fmt: skip

    async def start(self) -> None:
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=self.workers))
        self.tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def _work(self) -> None:
        while True:
            url, body, event_headers = await self.queue.get()
            await send_event(self.client, url, body, event_headers)

    async def stop(self, drain_s: float = 5.0) -> None:
        """Sends what is queued, for at most ``drain_s``, then stops."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._drained(), drain_s)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.client.aclose()

    async def _drained(self) -> None:
        while not self.queue.empty():
            await asyncio.sleep(0.05)


class Gateway:
    def __init__(self, deployments_dir: Path, pool: Pool, poll_s: float = 1.0, seed: int | None = None):
        self.root = deployments_dir
        self.root.mkdir(parents=True, exist_ok=True)
        self.target = LocalTarget(deployments_dir)
        self.pool = pool
        self.poll_s = poll_s
        self.random = random.Random(seed)
        self.deployments: dict[tuple[str, str], dict] = {}
        self.signature: tuple = ()
        self.background: set[asyncio.Task] = set()
        self.client: httpx.AsyncClient | None = None
        self.request_logger = RequestLogger()
        self.registry = CollectorRegistry()
        built = metric_names.build("gateway", self.registry)  # Seldon's executor names and labels
        self.server_seconds = built["seldon_api_executor_server_requests_seconds"]
        self.client_seconds = built["seldon_api_executor_client_requests_seconds"]

    # -- reconciling

    def reconcile(self) -> None:
        """Bring the model-server processes in line with the state folder (blocking: run it in a thread)."""
        signature = self.target.signature()
        wanted = self.target.all()
        for key, sdep in wanted.items():
            self.pool.reconcile(key[0], key[1], sdep["spec"]["predictors"], prune=False)
        gone = set(self.deployments) - set(wanted)
        # Route by the new objects first, then stop the predictors that left: a request routed by the old table
        # (a canary removed by a promotion or a rollback) must still find its process.
        self.deployments, self.signature = wanted, signature
        for key, sdep in wanted.items():
            self.pool.prune(key[0], key[1], {p["name"] for p in sdep["spec"]["predictors"]})
        for key in gone:
            self.pool.remove(*key)

    async def watch(self) -> None:
        while True:
            try:
                if self.target.signature() != self.signature:
                    await asyncio.to_thread(self.reconcile)
            except Exception:  # a bad file must not stop the loop; it is logged and retried
                log.exception("reconcile failed")
            await asyncio.sleep(self.poll_s)

    # -- routing

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    @staticmethod
    def _live(predictors: list[dict]) -> tuple[list[dict], list[int]]:
        live = [p for p in predictors if not p.get("shadow")]
        weights = [p.get("traffic", 100 if len(live) == 1 else 0) for p in live]
        return live, weights

    def _log(self, sdep: dict, namespace: str, predictor: dict, kind: str, puid: str, body: bytes) -> None:
        logger = predictor.get("graph", {}).get("logger")
        if not logger or not logger.get("url"):
            return
        mode = logger.get("mode", "all")
        if (kind == cloudevents.REQUEST and mode == "response") or (kind != cloudevents.REQUEST and mode == "request"):
            return
        headers = cloudevents.headers(
            kind, puid, sdep["metadata"]["name"], namespace, predictor["name"], predictor["graph"]["name"]
        )
        self.request_logger.put(logger["url"], body, headers)

    async def _forward(self, key, predictor, endpoint, path: str, body: bytes, puid: str, method: str):
        """Posts to a process taken from the pool (``Pool.acquire``), and gives it back."""
        labels = {
            "deployment_name": key[1],
            "predictor_name": predictor["name"],
            "predictor_version": endpoint.version,
            "service": path.rsplit("/", 1)[-1],
            "method": method,
        }
        started = time.perf_counter()
        try:
            response = await self.client.post(
                f"{endpoint.url}{path}",
                content=body,
                timeout=30.0,
                headers={"Content-Type": "application/json", "Seldon-Puid": puid},
            )
            code = str(response.status_code)
            return response
        except httpx.HTTPError as e:
            code = "503"
            log.warning("predictor %s: %s", predictor["name"], e)
            return None
        finally:
            self.pool.release(endpoint)
            image = (
                predictor["componentSpecs"][0]["spec"]["containers"][0].get("image", "")
                if predictor.get("componentSpecs")
                else ""
            )
            self.client_seconds.labels(
                **labels,
                code=code,
                model_name=predictor["graph"]["name"],
                model_image=image,
                model_version=endpoint.version,
            ).observe(time.perf_counter() - started)

    async def _mirror(self, key, sdep, predictor, path, body, puid, method) -> None:
        """A shadow's copy: its answer is logged and dropped; its slowness or failure reaches no client."""
        endpoint = self.pool.acquire((*key, predictor["name"]))
        if endpoint is None:  # the shadow left with the table this request was routed by: nothing was sent
            return
        started = time.perf_counter()
        self._log(sdep, key[0], predictor, cloudevents.REQUEST, puid, body)
        response = await self._forward(key, predictor, endpoint, path, body, puid, method)
        if response is not None and response.status_code < 400:
            self._log(sdep, key[0], predictor, cloudevents.RESPONSE, puid, response.content)
        # In the cluster a shadow has an executor of its own, which counts its requests like any predictor's:
        # the rollout's shadow checks (errors, latency) read these series.
        code = response.status_code if response is not None else 503
        self._observe(key, predictor, endpoint.version, path, method, code, started)

    def _observe(self, key, predictor: dict, version: str, path: str, method: str, code: int, started: float) -> None:
        self.server_seconds.labels(
            deployment_name=key[1],
            predictor_name=predictor["name"],
            predictor_version=version,
            service=path.rsplit("/", 1)[-1],
            method=method,
            code=str(code),
        ).observe(time.perf_counter() - started)

    def _route(self, key: tuple[str, str]) -> tuple[dict, dict, Endpoint] | Response:
        """The deployment, the live predictor chosen by weight, and its process taken from the pool; or the answer
        that says why there is none.

        The reconcile thread replaces the table first and then stops the predictors that left it, so a predictor
        chosen by the table of a moment ago may have no process by the time it is taken. The request has gone
        nowhere yet, so it is routed again by the table as it is now."""
        for _ in range(3):
            sdep = self.deployments.get(key)
            if sdep is None:
                return JSONResponse({"status": {"code": 404, "info": f"no SeldonDeployment {key[0]}/{key[1]}"}}, 404)
            live, weights = self._live(sdep["spec"]["predictors"])
            if not live or sum(weights) <= 0:
                return JSONResponse({"status": {"code": 503, "info": "no predictor takes traffic"}}, 503)
            chosen = self.random.choices(live, weights=weights)[0]
            endpoint = self.pool.acquire((*key, chosen["name"]))
            if endpoint is not None:
                return sdep, chosen, endpoint
        return JSONResponse({"status": {"code": 503, "info": f"predictor {chosen['name']} unavailable"}}, 503)

    async def handle(self, request: Request, path: str, method: str, kind: str) -> Response:
        started = time.perf_counter()
        key = (request.path_params["namespace"], request.path_params["name"])
        try:
            body = await read_limited(request, seldon_message.MAX_BYTES, "the model server's limit per message")
        except TooLargeError as e:
            return JSONResponse({"status": {"code": 413, "info": str(e)}}, 413)
        puid = request.headers.get("Seldon-Puid") or str(uuid.uuid4())
        if not _PUID.fullmatch(puid):  # it travels on in headers and CloudEvents: visible ASCII only, as Seldon's
            info = "Seldon-Puid: at most 128 visible ASCII characters (a request id, such as a UUID)"
            return JSONResponse({"status": {"code": 400, "info": info}}, 400)
        # Routed after the last await before forwarding, so that the table and the processes are current together.
        routed = self._route(key)
        if isinstance(routed, Response):
            return routed
        sdep, chosen, endpoint = routed
        self._log(sdep, key[0], chosen, kind, puid, body)
        if kind == cloudevents.REQUEST:
            for shadow in (p for p in sdep["spec"]["predictors"] if p.get("shadow")):
                self._spawn(self._mirror(key, sdep, shadow, path, body, puid, method))
        response = await self._forward(key, chosen, endpoint, path, body, puid, method)
        if response is None:
            answer = JSONResponse({"status": {"code": 503, "info": f"predictor {chosen['name']} unavailable"}}, 503)
        else:
            if response.status_code < 400 and kind == cloudevents.REQUEST:
                self._log(sdep, key[0], chosen, cloudevents.RESPONSE, puid, response.content)
            answer = Response(response.content, response.status_code, media_type="application/json")
        answer.headers["Seldon-Puid"] = puid
        self._observe(key, chosen, endpoint.version, path, method, answer.status_code, started)
        return answer

    # -- the app

    def app(self) -> Starlette:
        async def predictions(request):
            return await self.handle(request, "/api/v1.0/predictions", "predictions", cloudevents.REQUEST)

        async def feedback(request):
            # Seldon splits feedback by the same weights as predictions: it may reach another predictor.
            return await self.handle(request, "/api/v1.0/feedback", "feedback", cloudevents.FEEDBACK)

        async def metrics(request):
            return Response(generate_latest(self.registry), media_type="text/plain; version=0.0.4")

        async def health(request):
            return JSONResponse({"deployments": [f"{ns}/{name}" for ns, name in self.deployments]})

        @contextlib.asynccontextmanager
        async def lifespan(app):
            self.client = httpx.AsyncClient(limits=httpx.Limits(max_connections=200))
            await self.request_logger.start()
            await asyncio.to_thread(self.reconcile)
            watcher = asyncio.create_task(self.watch())
            try:
                yield
            finally:
                watcher.cancel()
                await self.request_logger.stop()
                await self.client.aclose()
                await asyncio.to_thread(self.pool.stop_all)

        prefix = "/seldon/{namespace}/{name}/api/v1.0"
        return Starlette(
            routes=[
                Route(f"{prefix}/predictions", predictions, methods=["POST"]),
                Route(f"{prefix}/feedback", feedback, methods=["POST"]),
                Route("/metrics", metrics),
                Route("/health", health),
            ],
            lifespan=lifespan,
        )
