"""A stand-in model server for the gateway tests: answers with its predictor name and model version, after a
delay, or with a 500, as its environment says; counts what it received in a file.

    python echo_predictor.py PORT NAME VERSION   (env: ECHO_DELAY, ECHO_FAIL, ECHO_COUNT_FILE)
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, name, version = int(sys.argv[1]), sys.argv[2], sys.argv[3]
delay = float(os.environ.get("ECHO_DELAY", "0"))
fail = os.environ.get("ECHO_FAIL") == "1"
count_file = os.environ.get("ECHO_COUNT_FILE")
lock = threading.Lock()
received = 0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send(200, {"status": "ok"})

    def do_POST(self):
        global received
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            received += 1
            if count_file:
                with open(count_file, "w") as f:
                    f.write(str(received))
        if delay:
            time.sleep(delay)
        if fail:
            return self._send(500, {"status": {"code": 500, "info": "failing on purpose"}})
        self._send(
            200,
            {
                "data": {"names": ["predictor", "version"], "ndarray": [[name, version]]},
                "meta": {"puid": self.headers.get("Seldon-Puid"), "echo": body.decode(errors="replace")},
            },
        )


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
