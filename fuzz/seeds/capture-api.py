#!/usr/bin/env python3
"""Captures real daemon request bodies as api_bodies seeds: serves a stand-in daemon socket
that answers GET /v1/ping and records every POST body, while the real berth CLI runs verbs on
the examples against it. Every POST is refused after being recorded, so nothing is created.

Usage: python3 fuzz/seeds/capture-api.py PATH/TO/berth
"""
import http.server
import json
import os
import pathlib
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
OUT = HERE.parent / "corpus" / "api_bodies"
berth = sys.argv[1]
run = tempfile.mkdtemp(prefix="berth-capture-run")
root = tempfile.mkdtemp(prefix="berth-capture-root")
seen = []


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self):
        return "unix"

    def log_message(self, *a):
        pass

    def answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.answer(200, b"OK")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        seen.append((self.path, self.rfile.read(n)))
        self.answer(400, json.dumps({"message": "captured for fuzz seeds"}).encode())


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


srv = Server(os.path.join(run, "berth.sock"), Handler)
threading.Thread(target=srv.serve_forever, daemon=True).start()


def cli(*args, compose=None):
    cmd = [berth, "--root", root, "--run", run]
    if compose:
        cmd += ["-f", str(compose)]
    r = subprocess.run(cmd + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    # The stand-in must be the daemon the CLI talked to: a real one would leave a pid file.
    if os.path.exists(os.path.join(run, "berth.pid")):
        sys.exit(f"a real daemon was started by {args}: stop it (pid in {run}/berth.pid)")
    print(" ".join(args), "->", r.returncode, file=sys.stderr)


hello = REPO / "examples/hello/compose.yaml"
for c in sorted(REPO.glob("examples/*/compose.yaml")):
    cli("up", "-d", compose=c)
    cli("down", "-v", "--remove-orphans", compose=c)
cli("up", "-d", "--scale", "web=2", "--no-deps", "web", compose=hello)
cli("run", "--rm", "-e", "A=1", "web", "true", compose=hello)
cli("build", compose=REPO / "examples/zookeeper/compose.yaml")
cli("network", "create", "--subnet", "10.77.0.0/24", "--internal", "fuzznet")
cli("network", "rm", "fuzznet")
cli("network", "prune", "-f")
cli("rm", "-f", "somecontainer")
srv.shutdown()
shutil.rmtree(run, ignore_errors=True)
shutil.rmtree(root, ignore_errors=True)
OUT.mkdir(parents=True, exist_ok=True)
for i, (path, data) in enumerate(seen):
    name = f"{path.strip('/').replace('/', '_')}_{i}"
    (OUT / name).write_bytes(data)
    print(name, len(data))
