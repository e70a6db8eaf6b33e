#!/usr/bin/env python3
"""Test harness for the SDK's browser tests: runs a roomcast server and lets the tests in
the browser steer it over HTTP (with CORS, since the test page has another origin).

  POST /restart        stops the server (SIGTERM, graceful) and starts it again on the
                       same port and store
  POST /crash          kills it (SIGKILL: connections drop without a close frame) and
                       starts it again
  ANY  /api/...        forwarded to the server with the dev API key

Usage: browser-test-control.py <roomcast binary> <server port> <control port> <store dir>
It prints "ready" once the server answers /healthz.
"""

import http.server
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

BINARY, SERVER_PORT, CONTROL_PORT, STORE_DIR = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
API_KEY = "roomcast-dev-api-key"
ENV = dict(
    os.environ,
    ROOMCAST_DEV="1",
    ROOMCAST_BIND=f"127.0.0.1:{SERVER_PORT}",
    ROOMCAST_STORE=f"sqlite://{STORE_DIR}/roomcast.db",
    ROOMCAST_HEARTBEAT_INTERVAL_MS="300",
    ROOMCAST_HEARTBEAT_TIMEOUT_MS="500",
    ROOMCAST_MAX_CONNECTIONS_PER_USER="3",
    ROOMCAST_BATCH_WINDOW_MS="200",
    ROOMCAST_LOG="warn",
)
LOG = open(os.path.join(STORE_DIR, "server.log"), "ab")
server = None


def healthy():
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{SERVER_PORT}/healthz", timeout=1):
            return True
    except (urllib.error.URLError, OSError):
        return False


def start():
    global server
    server = subprocess.Popen([BINARY], env=ENV, stdout=LOG, stderr=LOG)
    for _ in range(200):
        if healthy():
            return
        time.sleep(0.05)
    raise SystemExit("roomcast did not start")


def stop(sig=signal.SIGTERM):
    if server and server.poll() is None:
        server.send_signal(sig)
        server.wait(timeout=15)


class Control(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=b"{}"):
        self.send_response(status)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "content-type")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_OPTIONS(self):
        self.answer(204, b"")

    def forward(self):
        if self.path in ("/restart", "/crash") and self.command == "POST":
            stop(signal.SIGTERM if self.path == "/restart" else signal.SIGKILL)
            start()
            return self.answer(200)
        if not self.path.startswith("/api/"):
            return self.answer(404)
        length = int(self.headers.get("Content-Length") or 0)
        request = urllib.request.Request(
            f"http://127.0.0.1:{SERVER_PORT}{self.path}",
            data=self.rfile.read(length) if length else None,
            method=self.command,
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                self.answer(response.status, response.read())
        except urllib.error.HTTPError as error:
            self.answer(error.code, error.read())

    do_GET = do_POST = do_PUT = do_DELETE = forward


start()
signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", CONTROL_PORT), Control)
print("ready", flush=True)
try:
    httpd.serve_forever()
finally:
    stop()
