"""A small S3-compatible HTTP server on loopback for the scoring benchmark's S3 arm (benchmark only).

Used by ``bench_score.py --s3-latency-ms``; holds no command of its own. It serves the files under one
local folder as the objects of one bucket, path-style (``GET /<bucket>/<key>``, the key a path relative to
the folder), with the headers boto3 reads (Content-Length, ETag, Last-Modified, Content-Type), and an S3
``NoSuchKey`` (or ``NoSuchBucket``) XML error with status 404 for a missing object. Only GET: neither the
job's fetch code (``softlines_attr/io/fetch.py``: ``get_object``) nor the peer sends anything else;
another method gets 501 from :mod:`http.server`.

Every response waits ``latency_ms`` first (``time.sleep``: no CPU, like the first-byte latency of a
far-away S3), so concurrent requests wait at the same time, as S3's do. The server counts the requests
it answered, by status. Its own CPU per request is kept small (no signature check, no hashing of the
body: the ETag is made from the file's size and modification time), since it runs on the cores the
measured arms use; both arms send the same kind of GETs, so they pay it alike.

Not moto: moto's server costs milliseconds of CPU per request (the tests keep moto).
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import threading
import time
from collections import Counter
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import unquote, urlsplit
from xml.sax.saxutils import escape


class _Handler(BaseHTTPRequestHandler):
    """One connection's requests (HTTP/1.1 keep-alive: boto3 pools its connections)."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY: a body's last segment is not held for the client's delayed ACK
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.wait()
        bucket, _, key = unquote(urlsplit(self.path).path).lstrip("/").partition("/")
        if bucket != self.server.bucket:
            self._error(HTTPStatus.NOT_FOUND, "NoSuchBucket", "The specified bucket does not exist.", bucket, key)
            return
        path = self.server.path_of(key)
        try:
            if path is None:
                raise FileNotFoundError(key)
            with open(path, "rb") as fh:
                st = os.fstat(fh.fileno())
                data = fh.read()
        except OSError:  # no such file, a folder, unreadable: no such object
            self._error(HTTPStatus.NOT_FOUND, "NoSuchKey", "The specified key does not exist.", bucket, key)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", mimetypes.guess_type(key)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", f'"{st.st_size:x}-{st.st_mtime_ns:x}"')
        self.send_header("Last-Modified", email.utils.formatdate(st.st_mtime, usegmt=True))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(data)
        self.server.count(HTTPStatus.OK)

    def _error(self, status: HTTPStatus, code: str, message: str, bucket: str, key: str) -> None:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message><BucketName>{escape(bucket)}</BucketName>"
            f"<Key>{escape(key)}</Key><RequestId>bench</RequestId></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.count(status)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        """No line per request on stderr (its cost would be the server's, and the output unreadable)."""


class _Server(ThreadingHTTPServer):
    """The listening socket, one thread per connection; the bucket, the folder, the latency and the counts."""

    daemon_threads = True

    def __init__(self, root: Path, bucket: str, latency_ms: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root.resolve()
        self.bucket = bucket
        self.latency_s = latency_ms / 1000
        self.counts: Counter[int] = Counter()
        self._lock = threading.Lock()

    def wait(self) -> None:
        if self.latency_s > 0:
            time.sleep(self.latency_s)

    def path_of(self, key: str) -> Path | None:
        """The file of ``key``, or None for a key that leaves the folder (``..``) or is empty."""
        if not key:
            return None
        path = (self.root / key).resolve()
        return path if path.is_relative_to(self.root) else None

    def count(self, status: int) -> None:
        with self._lock:
            self.counts[int(status)] += 1


class S3Server:
    """The server as a context manager: started on an ephemeral port of 127.0.0.1, stopped on exit.

    Args:
        root: The folder whose files are the bucket's objects (key = path relative to it, ``/``-separated).
        bucket: The one bucket's name.
        latency_ms: Milliseconds every response waits before it is sent (settable later: :attr:`latency_ms`).

    Example:
        with S3Server(catalog_dir, "bench-photos", latency_ms=20) as s3:
            boto3.client("s3", endpoint_url=s3.endpoint, ...).get_object(Bucket="bench-photos", Key="images/a.jpg")
            s3.requests()  # 1
    """

    def __init__(self, root: Path, bucket: str, latency_ms: float = 0.0) -> None:
        if latency_ms < 0:
            raise ValueError(f"expected a latency >= 0 ms, found {latency_ms}")
        if not Path(root).is_dir():
            raise ValueError(f"expected a folder of objects to serve, found no folder at {root}")
        self._server = _Server(Path(root), bucket, latency_ms)
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>``: what ``AWS_ENDPOINT_URL_S3`` / ``endpoint_url`` take."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def bucket(self) -> str:
        return self._server.bucket

    @property
    def latency_ms(self) -> float:
        return self._server.latency_s * 1000

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        if value < 0:
            raise ValueError(f"expected a latency >= 0 ms, found {value}")
        self._server.latency_s = value / 1000

    def requests(self) -> dict[int, int]:
        """Requests answered so far, by HTTP status."""
        with self._server._lock:
            return dict(self._server.counts)

    def reset(self) -> None:
        """Forget the counts."""
        with self._server._lock:
            self._server.counts.clear()

    def __enter__(self) -> S3Server:
        self._thread = threading.Thread(target=self._server.serve_forever, name="bench-s3", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
