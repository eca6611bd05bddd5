"""A real S3 endpoint for integration tests: moto's ThreadedMotoServer on 127.0.0.1.

Needs ``moto[s3,server]`` (flask, flask-cors). Like s3fs's own test suite, one
server runs per module on a free port and its state is reset between tests
(``POST /moto-api/reset``); each test gets a fresh bucket.

Use from a test module::

    @pytest.fixture(scope="module")
    def s3_server():
        with running_s3_server() as server:
            yield server

    @pytest.fixture
    def s3_bucket(s3_server, monkeypatch):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY) ...
        yield s3_server.new_bucket()
        s3_server.reset()
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

TEST_ACCESS_KEY = "testing"
TEST_SECRET_KEY = "testing"
TEST_REGION = "us-east-1"

_bucket_seq = itertools.count(1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (closed again before returning)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class S3Server:
    """A started moto S3 server: ``endpoint`` is ``http://127.0.0.1:<port>``."""

    def __init__(self, port: int | None = None) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port or 0, verbose=False)
        self._server.start()
        host, bound = self._server.get_host_and_port()
        self.host = host
        self.port = int(bound)
        self.endpoint = f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._server.stop()

    def reset(self) -> None:
        """Forget every bucket and object (moto keeps state per process, not per server)."""
        req = urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()

    def client(self) -> Any:
        """A plain boto3 S3 client for checking the raw store."""
        import boto3  # type: ignore[import-untyped]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=TEST_ACCESS_KEY,
            aws_secret_access_key=TEST_SECRET_KEY,
            region_name=TEST_REGION,
        )

    def new_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh unique name by default) and return its name."""
        bucket = name or f"test-bucket-{os.getpid()}-{next(_bucket_seq)}"
        self.client().create_bucket(Bucket=bucket)
        return bucket

    def list_keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key in ``bucket`` under ``prefix``, sorted."""
        s3 = self.client()
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys.extend(obj["Key"] for obj in page.get("Contents", []))
        return sorted(keys)


def s3_env() -> dict[str, str]:
    """Environment for clients of the test server (our client, boto3, the litestream binary)."""
    env = {
        "AWS_ACCESS_KEY_ID": TEST_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY,
        "AWS_DEFAULT_REGION": TEST_REGION,
        "AWS_REGION": TEST_REGION,
    }
    return env


@contextlib.contextmanager
def running_s3_server(port: int | None = None) -> Iterator[S3Server]:
    """Start a server (on ``port`` or a free one), yield it, stop it."""
    server = S3Server(port)
    try:
        yield server
    finally:
        server.stop()


class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` that can fail requests on purpose.

    ``fail(status, code, times)`` queues ``times`` failures answered with an S3 XML
    error (e.g. ``503 SlowDown``, ``500 InternalError``, ``403 AccessDenied``) before
    requests pass through again; ``fail_always`` fails every request. ``requests``
    counts every request received. Bounded: it only ever talks to ``upstream``.

    Two ways to make the endpoint unreachable:

    * :meth:`black_hole`: connections are still accepted and requests read, but no
      request received from then on is ever answered (a hung server, a dropped route):
      only the client's own timeouts end its wait. :meth:`heal` (or :meth:`close`)
      ends the hole: the requests held in it are dropped unanswered (connection closed).
    * :meth:`refuse`: the listening socket is closed and every open connection cut,
      so each new connection is refused (``ECONNREFUSED``); for good: a test that needs
      the store back afterwards talks to ``upstream`` directly.
    """

    def __init__(self, upstream: str) -> None:
        import http.server
        import threading
        import urllib.parse

        self._upstream = urllib.parse.urlsplit(upstream)
        self._lock = threading.Lock()
        self._faults: list[tuple[int, str]] = []
        self._always: tuple[int, str] | None = None
        self.requests = 0
        self.held = 0
        """Requests received by the black hole (held, never answered)."""
        self._hole: threading.Event | None = None  # set: the black hole is over
        self._refusing = False
        self._conns: set[socket.socket] = set()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                if not proxy._track(self.connection):
                    self.close_connection = True

            def finish(self) -> None:
                with contextlib.suppress(OSError):
                    super().finish()
                proxy._untrack(self.connection)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy._swallow():  # black hole or refusing: never answered
                    self.close_connection = True
                    return
                fault = proxy._next_fault()
                if fault is not None:
                    status, code = fault
                    payload = (
                        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                        f"<Message>injected {code}</Message><RequestId>fault</RequestId></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                proxy._forward(self, body)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                if proxy._refusing or proxy._hole is not None:
                    return  # connections cut on purpose: not an error of the proxy
                super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._listening = True
        self._thread.start()

    def fail(self, status: int, code: str, times: int = 1) -> None:
        with self._lock:
            self._faults.extend([(status, code)] * times)

    def fail_always(self, status: int, code: str) -> None:
        with self._lock:
            self._always = (status, code)

    def heal(self) -> None:
        """No more faults; a black hole ends (what it holds is dropped unanswered). A refusal stays."""
        with self._lock:
            self._faults.clear()
            self._always = None
            hole, self._hole = self._hole, None
        if hole is not None:
            hole.set()

    def black_hole(self) -> None:
        """From now on accept connections, read requests and never answer them (until :meth:`heal`)."""
        with self._lock:
            if self._hole is None:
                self._hole = threading.Event()

    def refuse(self) -> None:
        """Stop listening (new connections are refused) and cut every open connection; for good."""
        with self._lock:
            self._refusing = True
            conns = list(self._conns)
        self._stop_listening()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _track(self, conn: socket.socket) -> bool:
        """Remember an open connection; False (cut it) when the proxy refuses connections."""
        with self._lock:
            if self._refusing:
                return False
            self._conns.add(conn)
            return True

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _swallow(self) -> bool:
        """For a request just read: True if it must go unanswered (held while the black hole lasts)."""
        with self._lock:
            if self._refusing:
                return True
            hole = self._hole
            if hole is not None:
                self.requests += 1
                self.held += 1
        if hole is None:
            return False
        hole.wait()
        return True

    def _stop_listening(self) -> None:
        with self._lock:
            server, self._listening = self._server if self._listening else None, False
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(timeout=5)

    def _next_fault(self) -> tuple[int, str] | None:
        with self._lock:
            self.requests += 1
            if self._always is not None:
                return self._always
            return self._faults.pop(0) if self._faults else None

    def _forward(self, handler: Any, body: bytes) -> None:
        import http.client

        conn = http.client.HTTPConnection(
            self._upstream.hostname or "127.0.0.1", self._upstream.port, timeout=30
        )
        try:
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("connection",)}
            conn.request(handler.command, handler.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            handler.send_response(resp.status)
            head = handler.command == "HEAD"  # keep the object's Content-Length, there is no body
            for k, v in resp.getheaders():
                name = k.lower()
                if name in ("transfer-encoding", "connection") or (name == "content-length" and not head):
                    continue
                handler.send_header(k, v)
            if not head:
                handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            if handler.command != "HEAD":
                handler.wfile.write(data)
        finally:
            conn.close()

    def close(self) -> None:
        with self._lock:
            hole, self._hole = self._hole, None
        if hole is not None:
            hole.set()
        self._stop_listening()


class CountingProxy(FaultProxy):
    """A pass-through proxy that records the kind and level of every S3 request."""

    def __init__(self, upstream: str, bucket: str) -> None:
        super().__init__(upstream)
        self.bucket = bucket
        self.log: list[tuple[str, int | None]] = []
        self._log_lock = threading.Lock()

    def _forward(self, handler: Any, body: bytes) -> None:
        url = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        parts = url.path.strip("/").split("/")
        key = "/".join(parts[1:])
        level = None
        segs = key.split("/")
        if len(segs) >= 2 and len(segs[-2]) == 4:
            level = int(segs[-2], 16)
        if handler.command == "GET" and ("list-type" in query or not key):
            kind = "LIST"
        elif handler.command == "POST" and "delete" in query:
            kind = "DELETE"
        else:
            kind = handler.command
        with self._log_lock:
            self.log.append((kind, level))
        super()._forward(handler, body)

    def counts(self, since: int = 0) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._log_lock:
            for kind, _ in self.log[since:]:
                out[kind] = out.get(kind, 0) + 1
        return out
