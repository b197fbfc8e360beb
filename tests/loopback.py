"""A scripted OpenAI-compatible HTTP server on loopback that fails on purpose."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class Scripted(BaseHTTPRequestHandler):
    """Replies by the last user message: 'flaky' fails twice with 503, 'limited' gets one
    429, 'slow' sleeps past the client timeout once, 'dead' always fails with 500, 'garbage'
    gets a cut-off 200 body once, 'nulltext' always a reply whose text is null, 'absurd'
    always negative token counts, 'toolong' a 400 (prompt longer than the context)."""

    hits: dict = {}
    ports: list = []
    bodies: list = []
    auth: list = []
    times: list = []
    lock = threading.Lock()

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = [m["content"] for m in body.get("messages", []) if m["role"] == "user"]
        tag = (user[0] if user else body.get("prompt", "")).split()[0]
        with self.lock:
            n = self.hits[tag] = self.hits.get(tag, 0) + 1
            self.bodies.append(body)
            self.ports.append(self.server.server_address[1])
            self.auth.append(self.headers.get("Authorization"))
            self.times.append(time.monotonic())
        if (tag == "flaky" and n <= 2) or tag == "dead":
            return self._send(503 if tag == "flaky" else 500, {"error": {"message": "down"}})
        if tag == "limited" and n == 1:
            return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
        if tag == "slow" and n == 1:
            time.sleep(1.5)
        if tag == "toolong":
            return self._send(400, {"error": {"message": "This model's maximum context length is "
                                                        "2048 tokens; your prompt has 9000"}})
        if tag == "garbage" and n == 1:
            return self._send_raw(200, b'{"id": "x", "object": "chat.completion", "choi')
        content = None if tag == "nulltext" else f"reply to {tag}"
        usage = -5 if tag == "absurd" else 3
        self._send(200, {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": content}}],
                         "usage": {"prompt_tokens": 7, "completion_tokens": usage, "total_tokens": 10}})

    def _send_raw(self, code, data):
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _send(self, code, payload, headers=None):
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def scripted():
    Scripted.hits, Scripted.bodies, Scripted.auth, Scripted.times, Scripted.ports = {}, [], [], [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture
def second_server():
    """Another scripted server sharing the same records (Scripted.ports tells them apart)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
