"""Client traffic for the local loop: rows of a span sent one by one to the served model through the gateway
(Seldon's external path), each answered request followed by its ground truth as feedback, the way a lending
system reports outcomes back. Every answer is counted by phase, so the demo and its test can say how many client
requests failed during each update (the target is none).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import httpx

__all__ = ["Traffic"]

IN_FLIGHT = 32
KEEPALIVE_S = 2.0  # below the gateway server's keep-alive (ctloop.services.http_server), so the client closes first


@dataclass
class Tally:
    ok: int = 0
    failed: int = 0
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    versions: Counter = field(default_factory=Counter)


class Traffic:
    """Sends ``rate`` requests per second from ``rows`` (dicts with the features and the label) in a thread."""

    def __init__(self, base_url: str, namespace: str, name: str, features: list[str], label: str, rate: float = 20.0):
        self.url = f"{base_url.rstrip('/')}/seldon/{namespace}/{name}/api/v1.0"
        self.features, self.label, self.rate = features, label, rate
        self.rows: list[dict] = []
        self.phase = "start"
        self.tallies: dict[str, Tally] = defaultdict(Tally)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def use(self, rows: list[dict], phase: str) -> None:
        with self._lock:
            self.rows, self.phase = rows, phase

    def mark(self, phase: str) -> None:
        with self._lock:
            self.phase = phase

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def totals(self) -> Tally:
        total = Tally()
        for t in list(self.tallies.values()):
            total.ok += t.ok
            total.failed += t.failed
            total.statuses.update(t.statuses)
            total.versions.update(t.versions)
        return total

    async def _run(self) -> None:
        interval = 1.0 / self.rate
        i = 0
        pending: set[asyncio.Task] = set()
        # At most IN_FLIGHT requests (each with its feedback) at once, on as many connections: a gateway that falls
        # behind gets fewer requests, not a growing queue inside httpx's pool, whose cost per request grows with
        # the queue until the client spends its core there and never catches up.
        slots = asyncio.Semaphore(IN_FLIGHT)
        # An idle connection is dropped before the gateway's uvicorn closes it (5 s): at equal timeouts a request
        # sent as the server closes fails with a ReadError (two of 7,292 in one CI run of the demo).
        limits = httpx.Limits(max_connections=IN_FLIGHT, keepalive_expiry=KEEPALIVE_S)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                with self._lock:
                    rows, phase = self.rows, self.phase
                if rows:
                    await slots.acquire()
                    task = asyncio.create_task(self._one(client, rows[i % len(rows)], phase))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                    task.add_done_callback(lambda _: slots.release())
                    i += 1
                # Ticks missed while waiting for a slot are skipped, not sent in a burst.
                next_at = max(next_at + interval, time.monotonic())
                await asyncio.sleep(max(next_at - time.monotonic(), 0))
            if pending:
                await asyncio.wait(pending, timeout=30)

    async def _one(self, client: httpx.AsyncClient, row: dict, phase: str) -> None:
        tally = self.tallies[phase]
        request = {"data": {"names": self.features, "ndarray": [[row[f] for f in self.features]]}}
        started = time.perf_counter()
        try:
            response = await client.post(f"{self.url}/predictions", json=request)
        except httpx.HTTPError as e:
            tally.failed += 1
            tally.statuses[type(e).__name__] += 1
            return
        tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        tally.statuses[response.status_code] += 1
        if response.status_code != 200:
            tally.failed += 1
            return
        tally.ok += 1
        answer = response.json()
        tally.versions[str(answer.get("meta", {}).get("tags", {}).get("model_version", ""))] += 1
        feedback = {"request": request, "response": answer, "truth": {"data": {"ndarray": [[row[self.label]]]}}}
        puid = response.headers.get("Seldon-Puid", "")
        with contextlib.suppress(httpx.HTTPError):  # best effort, as outcomes reported late or never
            await client.post(f"{self.url}/feedback", json=feedback, headers={"Seldon-Puid": puid})
