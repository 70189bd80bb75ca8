"""Fetching image bytes concurrently, in order, with a bounded window.

A :class:`Fetcher` owns one storage client per task (one boto3 client for S3, whose connection pool
is sized to the fetch threads). :func:`ordered_map` runs a function (fetch + decode) over items on
a thread pool and yields results in input order while keeping at most ``window`` items in flight,
so memory stays bounded and fetches overlap with decoding.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from softlines_attr.config import ShardConfig
from softlines_attr.errors import SoftlinesAttrError
from softlines_attr.io.storage import (
    ObjectMissingError,
    ObjectTooLargeError,
    S3Storage,
    UnsupportedSchemeError,
    make_s3_client,
    parse_uri,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class FetchError(SoftlinesAttrError):
    """One image could not be fetched; ``reason`` is the reject reason code.

    Attributes:
        reason: ``missing``, ``too_large``, ``not_a_file``, ``timeout``, ``unsupported_scheme`` or ``fetch_failed``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


#: S3 error codes worth another attempt (throttling, transient server errors), as botocore's retry handler
#: classifies them.
RETRYABLE_S3_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "InternalError",
        "ServiceUnavailable",
        "500",
        "502",
        "503",
        "504",
    }
)
_READ_CHUNK = 1 << 20


def read_local_bounded(path: str, max_bytes: int, deadline_s: float) -> bytes:
    """Read a local regular file of at most ``max_bytes`` bytes, within ``deadline_s`` seconds.

    The file is opened non-blocking (a FIFO without a writer cannot hang the open), refused unless it
    is a regular file (FIFOs, character devices such as ``/dev/zero``, sockets), and read in chunks of at
    most ``max_bytes + 1`` bytes in all, whatever size the file reports; the deadline is checked
    between chunks (a file growing while it is read, or a slow network file system, ends as a timeout).

    Raises:
        ObjectMissingError: no file, or a directory.
        ObjectTooLargeError: more than ``max_bytes`` bytes.
        FetchError: ``not_a_file`` for a non-regular file, ``timeout`` past the deadline.
        OSError: any other error of the operating system (the caller makes it ``fetch_failed``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise ObjectMissingError(f"expected a file at {path}, found none") from None
    except IsADirectoryError:
        raise ObjectMissingError(f"expected a file at {path}, found a directory") from None
    started = time.monotonic()
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ObjectMissingError(f"expected a file at {path}, found a directory")
        if not stat.S_ISREG(st.st_mode):
            raise FetchError("not_a_file", f"expected a regular file at {path}, found {_file_kind(st.st_mode)}")
        if st.st_size > max_bytes:
            raise ObjectTooLargeError(f"expected at most {max_bytes} bytes, found {st.st_size} in {path}")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(_READ_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise ObjectTooLargeError(
                    f"expected at most {max_bytes} bytes, found more than {max_bytes} in {path} (the file grew "
                    f"while it was read)"
                )
            if time.monotonic() - started > deadline_s:
                raise FetchError(
                    "timeout",
                    f"expected {path} read within {deadline_s}s, found {total} bytes read after "
                    f"{time.monotonic() - started:.2f}s",
                )
        return b"".join(chunks)
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return f"a special file (mode {stat.filemode(mode)})"


def make_get_client(pool_size: int, timeout_s: float, endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client that makes exactly one attempt per call (``total_max_attempts = 1``).

    botocore's ``max_attempts`` counts retries *after* the first request, so even ``max_attempts = 1``
    sends two; :class:`Fetcher` does its own retrying and needs one request per call.
    """
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or None
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max(1, pool_size),
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        s3={"addressing_style": "path"} if endpoint else None,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


class ShortBodyError(SoftlinesAttrError):
    """An S3 GET whose body ended before its Content-Length (a connection dropped mid-body): retried."""


class Fetcher:
    """Reads image bytes from local paths or S3 for one task.

    ``fetch_retries`` is the number of attempts per image in total (S3 GETs, whatever failed: a
    throttling or 5xx answer, a connect or read timeout, a connection dropped mid-body): the GETs of
    a fetch go through a client without botocore retries and are retried here only, with exponential
    backoff, so attempts never multiply. Local files get one attempt, bounded by ``fetch_timeout_s``.

    The fetch threads of a task share it: its clients are made once, under a lock, by the first thread that
    needs one (a boto3 client costs tens of milliseconds of CPU to make; unguarded, each of the task's first
    concurrent fetches made its own).

    Args:
        conf: The ``[shard]`` config (threads, timeout, retries, size limit).
        endpoint_url: S3 endpoint override (default: ``AWS_ENDPOINT_URL_S3``).
    """

    def __init__(self, conf: ShardConfig, endpoint_url: str | None = None) -> None:
        self.conf = conf
        self.endpoint_url = endpoint_url
        self._s3: S3Storage | None = None
        self._get_client: Any = None
        self._clients_lock = threading.Lock()
        self.s3_attempts = 0  # S3 GETs sent by this fetcher (tests and stats)

    @property
    def s3(self) -> S3Storage:
        """The task's S3 storage (uploads, with botocore's retries), created on first use."""
        with self._clients_lock:
            if self._s3 is None:
                client = make_s3_client(
                    self.conf.fetch_threads, self.conf.fetch_retries, self.conf.fetch_timeout_s, self.endpoint_url
                )
                self._s3 = S3Storage(client, self.conf.multipart_chunk_bytes, self.conf.fetch_threads)
            return self._s3

    @property
    def get_client(self) -> Any:
        """The client of image GETs: one attempt per call (the retries are :meth:`_fetch_s3`'s), created on first
        use."""
        with self._clients_lock:
            if self._get_client is None:
                self._get_client = make_get_client(
                    self.conf.fetch_threads, self.conf.fetch_timeout_s, self.endpoint_url
                )
            return self._get_client

    def fetch(self, uri: str) -> bytes:
        """The bytes at ``uri``.

        Raises:
            FetchError: with a reason code; never another exception for a per-image problem.
        """
        try:
            loc = parse_uri(uri)
        except UnsupportedSchemeError as exc:
            raise FetchError("unsupported_scheme", str(exc)) from None
        try:
            if loc.scheme == "s3":
                return self._fetch_s3(uri)
            return read_local_bounded(loc.key, self.conf.max_image_bytes, self.conf.fetch_timeout_s)
        except ObjectMissingError as exc:
            raise FetchError("missing", str(exc)) from None
        except ObjectTooLargeError as exc:
            raise FetchError("too_large", str(exc)) from None
        except PermissionError as exc:
            raise FetchError("fetch_failed", f"expected a readable file at {uri}: {exc.strerror}") from None
        except OSError as exc:
            raise FetchError("fetch_failed", f"reading {uri} failed: {exc}") from None

    def _get_once(self, uri: str) -> bytes:
        """One GET: at most ``max_image_bytes + 1`` bytes of the body are read, whatever its reported length."""
        from botocore.exceptions import ClientError

        loc = parse_uri(uri)
        limit = self.conf.max_image_bytes
        self.s3_attempts += 1
        try:
            resp = self.get_client.get_object(Bucket=loc.bucket, Key=loc.key)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NoSuchBucket", "NotFound"):
                raise ObjectMissingError(f"expected an object at {uri}, found none ({code})") from None
            raise
        body = resp["Body"]
        try:
            size = int(resp.get("ContentLength") or 0)
            if size > limit:
                raise ObjectTooLargeError(f"expected at most {limit} bytes, found {size} in {uri}")
            data = body.read(limit + 1)
            if len(data) > limit:
                raise ObjectTooLargeError(f"expected at most {limit} bytes, found more than {limit} in {uri}")
            if resp.get("ContentLength") is not None and len(data) != size:
                raise ShortBodyError(
                    f"S3 GET {uri}: expected {size} bytes (Content-Length), found {len(data)} before the "
                    f"connection ended"
                )
            return data
        finally:
            body.close()

    def _fetch_s3(self, uri: str) -> bytes:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            ReadTimeoutError,
        )
        from botocore.exceptions import (
            ConnectionError as BotoConnectionError,
        )
        from urllib3.exceptions import ProtocolError
        from urllib3.exceptions import ReadTimeoutError as Urllib3ReadTimeout

        attempts = max(1, self.conf.fetch_retries)
        timeouts = (ReadTimeoutError, ConnectTimeoutError, Urllib3ReadTimeout, TimeoutError)
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(min(2.0, 0.1 * 2 ** (attempt - 1)))
            try:
                return self._get_once(uri)
            except timeouts as exc:
                last = exc
            except (ProtocolError, BotoConnectionError, ShortBodyError) as exc:
                last = exc
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
                if code not in RETRYABLE_S3_CODES and status < 500:
                    raise FetchError("fetch_failed", f"S3 GET {uri} failed with {code}: {exc}") from None
                last = exc
            except BotoCoreError as exc:
                raise FetchError("fetch_failed", f"S3 GET {uri} failed: {exc}") from None
        reason = "timeout" if isinstance(last, timeouts) else "fetch_failed"
        raise FetchError(
            reason,
            f"S3 GET {uri}: expected the object within {attempts} attempts of {self.conf.fetch_timeout_s}s each, "
            f"failed: {last}",
        )


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, threads: int, window: int
) -> Iterator[tuple[T, R | BaseException]]:
    """Apply ``fn`` to ``items`` on ``threads`` threads, yielding ``(item, result_or_exception)`` in order.

    At most ``window`` items are submitted ahead of the one being yielded, which bounds memory.
    """
    window = max(1, window)
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="fetch") as pool:
        pending: deque[tuple[T, Future[R]]] = deque()
        it = iter(items)
        exhausted = False
        while True:
            while not exhausted and len(pending) < window:
                try:
                    item = next(it)
                except StopIteration:
                    exhausted = True
                    break
                pending.append((item, pool.submit(fn, item)))
            if not pending:
                return
            item, fut = pending.popleft()
            try:
                yield item, fut.result()
            except BaseException as exc:  # handed to the caller, who turns it into a reject
                yield item, exc
