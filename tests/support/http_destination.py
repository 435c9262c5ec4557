"""A real HTTP finance-system stand-in (docs/destination-api.md) that misbehaves on demand.

Runs http.server.ThreadingHTTPServer on 127.0.0.1 in a background thread.
It stores invoices by Idempotency-Key and counts how many times each key was
newly accepted, so a test can prove "exactly once" at the server.

Faults (`inject(fault, times=1, on="post", **opts)`), applied to the next
matching requests in order:
  500          answer 500, store nothing
  500-after-store  store the invoice, then answer 500 (the answer is "lost")
  503          answer 503 with Retry-After (opts: retry_after=seconds, default 1)
  429          answer 429 with Retry-After (same opts)
  slow         store, then answer after `delay` seconds (default 2.0)
  hold         (post only) keep the request, storing nothing, until `release()`
               (or the server stops), then serve it as usual: a put that
               arrives late, at the moment the test chooses; `released_served`
               counts those served
  reset        reset the TCP connection (RST) without answering, store nothing
  400          answer 400 with {"message": opts message}
  409          store if absent, then answer 409 "already exists" with no receipt
  lose         store and answer 201, then forget it: lookup says 404
`on` is "post" (POST /invoices), "get" (GET /invoices/{key}), "health" or "any".
`echo_auth=True` makes 401 and 500 answers repeat the request's Authorization
header in their message, as careless servers do (a leak test for redaction).
`fail_rate` (with `seed`) fails that share of POSTs at random with one of
500, 503, 429, reset, 500-after-store.

Use from tests: the `http_destination` fixture. From scripts:
`with FaultyFinanceServer(fail_rate=0.3, seed=1) as srv: srv.url ...`.
Standalone: `python -m tests.support.http_destination --port 8099`; then
GET /_admin/stats, POST /_admin/faults {"fault": "503", "times": 2}, POST /_admin/clear.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import random
import signal
import socket
import ssl
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

import pytest

FAULTS = ("500", "500-after-store", "503", "429", "slow", "hold", "reset", "400", "409", "lose")
RANDOM_FAULTS = ("500", "503", "429", "reset", "500-after-store")


class FaultyFinanceServer:
    """The API at `url` (http://127.0.0.1:PORT/api), faults on demand, counts per key."""

    def __init__(self, *, port: int = 0, token: str | None = None, username: str | None = None,
                 password: str | None = None, fail_rate: float = 0.0, seed: int = 0, base: str = "/api",
                 tls_cert: str | None = None, tls_key: str | None = None, keep_files: bool = False,
                 echo_auth: bool = False):
        self.token, self.username, self.password = token, username, password
        self.echo_auth = echo_auth
        self.fail_rate = fail_rate
        self.base = "/" + base.strip("/") if base.strip("/") else ""
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: collections.deque = collections.deque()
        self._stopping = threading.Event()
        self._released = threading.Event()
        self.released_served = 0   # held requests served after `release()`
        self.accepted: collections.Counter = collections.Counter()   # key -> times newly stored
        self.held: dict[str, dict] = {}                              # key -> receipt
        self.keep_files = keep_files  # off by default: 5,000 PDFs would dwarf a bench's own RSS
        self.files: dict[str, bytes] = {}                            # key -> file bytes (keep_files)
        self.fields: dict[str, dict] = {}                            # key -> JSON field set
        self.posts = 0
        self.faults_served: collections.Counter = collections.Counter()
        self._httpd = _Server(("127.0.0.1", port), _Handler)
        self._httpd.owner = self
        self.port = self._httpd.server_address[1]
        scheme = "http"
        if tls_cert:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls_cert, tls_key)
            self._httpd.socket = ctx.wrap_socket(self._httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}{self.base}"
        self._thread: threading.Thread | None = None

    # -- control -----------------------------------------------------------

    def start(self) -> "FaultyFinanceServer":
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"finance-server-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; slow answers in flight are cut short."""
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> "FaultyFinanceServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def inject(self, fault: str, times: int = 1, on: str = "post", **opts) -> None:
        """Queue `fault` for the next `times` requests matching `on`."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")
        if on not in ("post", "get", "health", "any"):
            raise ValueError(f"on must be post, get, health or any, not {on!r}")
        if fault == "hold" and on != "post":
            raise ValueError("hold holds puts only (on='post')")
        with self._lock:
            for _ in range(times):
                self._faults.append((fault, on, opts))

    def release(self) -> None:
        """Let every request held by a `hold` fault go on (now and later)."""
        self._released.set()

    def clear(self) -> None:
        """Forget queued faults and stop random failures (stored invoices stay)."""
        with self._lock:
            self._faults.clear()
            self.fail_rate = 0.0

    def stats(self) -> dict:
        """JSON-ready counters: accepted per key, held keys, POSTs, faults served."""
        with self._lock:
            return {"accepted": dict(self.accepted), "held": sorted(self.held), "posts": self.posts,
                    "faults_served": dict(self.faults_served), "duplicates":
                    {k: n for k, n in self.accepted.items() if n > 1}}

    # -- used by the handler -------------------------------------------------

    def _take_fault(self, kind: str) -> tuple[str, dict] | None:
        with self._lock:
            for i, (fault, on, opts) in enumerate(self._faults):
                if on in (kind, "any"):
                    del self._faults[i]
                    self.faults_served[fault] += 1
                    return fault, opts
            if kind == "post" and self.fail_rate and self._rng.random() < self.fail_rate:
                fault = self._rng.choice(RANDOM_FAULTS)
                self.faults_served[fault] += 1
                return fault, {}
        return None

    def _store(self, key: str, fields: dict, data: bytes, sha256: str, filename: str) -> tuple[dict, bool]:
        with self._lock:
            if key in self.held:
                return self.held[key], False
            self.accepted[key] += 1
            receipt = {"key": key, "id": f"R{sum(self.accepted.values()):07d}",
                       "location": f"{self.base}/invoices/{key}", "number": fields.get("number"),
                       "filename": filename, "sha256": sha256, "size": len(data)}
            self.held[key] = receipt
            if self.keep_files:
                self.files[key] = data
            self.fields[key] = fields
            return receipt, True

    def _hold(self) -> None:
        while not (self._released.wait(0.1) or self._stopping.is_set()):
            pass

    def _forget(self, key: str) -> None:
        with self._lock:
            self.held.pop(key, None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultyFinanceServer

    def handle_error(self, request, client_address) -> None:
        pass  # resets and client timeouts are the point here, not news


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so clients' connection pools are exercised
    # Headers and body go out in two writes; with Nagle on, delayed ACKs add 40 ms to each answer.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args) -> None:
        pass

    # -- routing -----------------------------------------------------------

    def do_GET(self) -> None:
        srv = self.server.owner
        path = self.path.split("?", 1)[0]
        if path == "/_admin/stats":
            return self._json(200, srv.stats())
        if not path.startswith(srv.base + "/"):
            return self._json(404, {"message": "no such route"})
        route = path[len(srv.base):]
        if not self._authorised():
            return
        if route == "/health":
            if self._apply_fault("health", None):
                return
            return self._json(200, {"status": "ok"})
        if route.startswith("/invoices/"):
            key = unquote(route[len("/invoices/"):])
            if self._apply_fault("get", None):
                return
            receipt = srv.held.get(key)
            if receipt is None:
                return self._json(404, {"message": f"invoice {key} not found"})
            return self._json(200, receipt)
        return self._json(404, {"message": "no such route"})

    def do_POST(self) -> None:
        srv = self.server.owner
        path = self.path.split("?", 1)[0]
        if path == "/_admin/faults":
            req = json.loads(self._body() or b"{}")
            srv.inject(req.pop("fault"), int(req.pop("times", 1)), req.pop("on", "post"), **req)
            return self._json(200, {"queued": len(srv._faults)})
        if path == "/_admin/clear":
            self._body()
            srv.clear()
            return self._json(200, {"ok": True})
        if path != srv.base + "/invoices":
            self._body()
            return self._json(404, {"message": "no such route"})
        with srv._lock:
            srv.posts += 1
        fault = srv._take_fault("post")
        if fault and fault[0] == "reset":
            return self._reset()
        body = self._body()
        if fault and fault[0] == "hold":
            srv._hold()
        if not self._authorised():
            return
        if fault and fault[0] in ("500", "503", "429", "400"):
            return self._fail(*fault)
        key = self.headers.get("Idempotency-Key", "").strip()
        if not key:
            return self._json(400, {"message": "Idempotency-Key header is required"})
        try:
            parts = _parse_multipart(self.headers.get("Content-Type", ""), body)
        except ValueError as e:
            return self._json(400, {"message": f"bad multipart body: {e}"})
        if "file" not in parts or "fields" not in parts:
            return self._json(400, {"message": "multipart needs a 'file' and a 'fields' part"})
        data, filename = parts["file"]
        try:
            fields = json.loads(parts["fields"][0])
        except ValueError:
            return self._json(400, {"message": "the 'fields' part is not JSON"})
        sha = parts.get("sha256", (b"", None))[0].decode().strip()
        if sha and hashlib.sha256(data).hexdigest() != sha:
            return self._json(400, {"message": "sha256 does not match the file"})
        receipt, new = srv._store(key, fields, data, sha, filename or "")
        kind = fault[0] if fault else None
        if kind == "hold":
            with srv._lock:
                srv.released_served += 1
        if kind == "500-after-store":
            return self._json(500, {"message": "internal error after commit"})
        if kind == "slow":
            srv._stopping.wait(float(fault[1].get("delay", 2.0)))
        if kind == "409":
            return self._json(409, {"message": f"invoice {key} already exists"})
        if kind == "lose":
            srv._forget(key)
        return self._json(201 if new else 200, receipt)

    # -- helpers -----------------------------------------------------------

    def _apply_fault(self, kind: str, _unused) -> bool:
        fault = self.server.owner._take_fault(kind)
        if fault is None:
            return False
        name, opts = fault
        if name == "reset":
            self._reset()
        elif name == "slow":
            self.server.owner._stopping.wait(float(opts.get("delay", 2.0)))
            return False

        elif name in ("500", "500-after-store", "503", "429", "400"):
            self._fail(name.split("-")[0], opts)
        else:
            return False
        return True

    def _fail(self, fault: str, opts: dict) -> None:
        if fault in ("503", "429"):
            retry_after = opts.get("retry_after", 1)
            msg = "in maintenance" if fault == "503" else "slow down"
            return self._json(int(fault), {"message": msg}, {"Retry-After": str(retry_after)})
        if fault == "400":
            return self._json(400, {"message": opts.get("message", "invalid invoice")})
        return self._json(500, {"message": "internal error" + self._echo()})

    def _echo(self) -> str:
        if not self.server.owner.echo_auth:
            return ""
        return f" (request had Authorization: {self.headers.get('Authorization', '')})"

    def _authorised(self) -> bool:
        srv = self.server.owner
        got = self.headers.get("Authorization", "")
        if srv.token is not None:
            ok = got == f"Bearer {srv.token}"
        elif srv.username is not None:
            want = base64.b64encode(f"{srv.username}:{srv.password or ''}".encode()).decode()
            ok = got == f"Basic {want}"
        else:
            ok = True
        if not ok:
            self._json(401, {"message": "invalid credentials" + self._echo()}, {"WWW-Authenticate": "Bearer"})
        return ok

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _reset(self) -> None:
        # SO_LINGER 0 makes close() send RST: the client sees a connection reset.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _json(self, status: int, doc: dict, headers: dict | None = None) -> None:
        data = json.dumps(doc, ensure_ascii=False).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up (timeout); nothing to tell it


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[bytes, str | None]]:
    """name -> (bytes, filename) for a multipart/form-data body; ValueError when malformed."""
    params = dict(p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p)
    boundary = params.get("boundary", "").strip('"')
    if not content_type.startswith("multipart/form-data") or not boundary:
        raise ValueError("not multipart/form-data with a boundary")
    out: dict[str, tuple[bytes, str | None]] = {}
    delimiter = b"--" + boundary.encode()
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise ValueError("missing closing boundary")
    for chunk in chunks[1:-1]:
        head, sep, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("part without headers")
        disposition = ""
        for line in head.decode("utf-8").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                disposition = line.split(":", 1)[1]
        attrs = {}
        for item in disposition.split(";")[1:]:
            if "=" in item:
                k, v = item.strip().split("=", 1)
                attrs[k.lower()] = unquote(v.strip('"'))
        if "name" not in attrs:
            raise ValueError("part without a name")
        out[attrs["name"]] = (data.removesuffix(b"\r\n"), attrs.get("filename"))
    return out


@pytest.fixture
def http_destination():
    """A started FaultyFinanceServer; stopped after the test."""
    with FaultyFinanceServer() as srv:
        yield srv


def main(argv: list[str] | None = None) -> int:
    """Run standalone until SIGTERM/SIGINT; prints the base url on the first line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--username")
    ap.add_argument("--password")
    ap.add_argument("--fail-rate", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--echo-auth", action="store_true", help="repeat the Authorization header in 401/500 bodies")
    args = ap.parse_args(argv)
    srv = FaultyFinanceServer(port=args.port, token=args.token, username=args.username,
                              password=args.password, fail_rate=args.fail_rate, seed=args.seed,
                              echo_auth=args.echo_auth)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    srv.start()
    print(srv.url, flush=True)
    done.wait()
    srv.stop()
    json.dump(srv.stats(), sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
