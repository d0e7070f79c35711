"""A closed-loop load generator for Seldon's gRPC API, standing in for wrk, which speaks only HTTP/1.1.

    .venvs/serve/bin/python bench/grpc_load.py HOST:PORT BODY.json CONNECTIONS SECONDS

BODY.json is a Seldon message in JSON (the body the HTTP runs send), sent as a SeldonMessage proto to
``seldon.protos.Model/Predict``, serialised once. CONNECTIONS calls are kept in flight on one channel (HTTP/2
streams, as Seldon's executor multiplexes them) for SECONDS; prints one JSON line with the same fields as
serving.py's wrk summary. Any failed call fails the run. It is Python: at the servers' rates it is slower than wrk
and may limit throughput, so the figure to compare is the server's CPU per request, which serving.py measures.
"""

from __future__ import annotations

import json
import sys
import threading
import time

import grpc
from google.protobuf import json_format
from seldon_core.proto import prediction_pb2

METHOD = "/seldon.protos.Model/Predict"


def _predict(channel: grpc.Channel):
    return channel.unary_unary(METHOD, request_serializer=None, response_deserializer=None)  # bytes in, bytes out


def message(body: str) -> bytes:
    return json_format.Parse(body, prediction_pb2.SeldonMessage()).SerializeToString()


def answer(address: str, body: str, timeout: float = 30.0) -> dict:
    """One call; the answer as the dict its JSON would be."""
    with grpc.insecure_channel(address) as channel:
        raw = _predict(channel)(message(body), timeout=timeout)
    return json_format.MessageToDict(prediction_pb2.SeldonMessage.FromString(raw))


def load(address: str, body: str, connections: int, seconds: float) -> dict:
    request = message(body)
    latencies: list[float] = []
    errors: list[str] = []
    done = threading.Event()
    lock = threading.Lock()
    in_flight = connections
    with grpc.insecure_channel(address) as channel:
        predict = _predict(channel)
        grpc.channel_ready_future(channel).result(timeout=30)
        start = time.perf_counter()
        end = start + seconds

        def send() -> None:
            sent = time.perf_counter()
            predict.future(request, timeout=30).add_done_callback(lambda call: finished(call, sent))

        def finished(call, sent: float) -> None:
            nonlocal in_flight
            now = time.perf_counter()
            with lock:
                if call.exception() is not None:
                    errors.append(str(call.exception()))
                else:
                    latencies.append(now - sent)
                if now < end and not errors:
                    send_next = True
                else:
                    send_next, in_flight = False, in_flight - 1
                    if in_flight == 0:
                        done.set()
            if send_next:
                send()

        for _ in range(connections):
            send()
        done.wait(seconds + 60)
        elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{len(errors)} failed calls, the first: {errors[0][:300]}")
    latencies.sort()
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }


if __name__ == "__main__":
    address, path, connections, seconds = sys.argv[1:]
    with open(path) as body:
        print(json.dumps(load(address, body.read(), int(connections), float(seconds))))
