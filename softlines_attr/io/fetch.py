"""Fetching image bytes concurrently, in order, with a bounded window.

A :class:`Fetcher` owns one storage client per task (one boto3 client for S3, whose connection pool
is sized to the fetch threads). :func:`ordered_map` runs a function (fetch + decode) over items on
a thread pool and yields results in input order while keeping at most ``window`` items in flight,
so memory stays bounded and fetches overlap with decoding.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from softlines_attr.config import ShardConfig
from softlines_attr.errors import SoftlinesAttrError
from softlines_attr.io.storage import (
    LocalStorage,
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
        reason: ``missing``, ``too_large``, ``timeout``, ``unsupported_scheme`` or ``fetch_failed``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Fetcher:
    """Reads image bytes from local paths or S3 for one task.

    Args:
        conf: The ``[shard]`` config (threads, timeout, retries, size limit).
        endpoint_url: S3 endpoint override (default: ``AWS_ENDPOINT_URL_S3``).
    """

    def __init__(self, conf: ShardConfig, endpoint_url: str | None = None) -> None:
        self.conf = conf
        self.endpoint_url = endpoint_url
        self._local = LocalStorage()
        self._s3: S3Storage | None = None

    @property
    def s3(self) -> S3Storage:
        """The task's S3 storage, created on first use."""
        if self._s3 is None:
            client = make_s3_client(self.conf.fetch_threads, self.conf.fetch_retries, self.conf.fetch_timeout_s, self.endpoint_url)
            self._s3 = S3Storage(client, self.conf.multipart_chunk_bytes, self.conf.fetch_threads)
        return self._s3

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
            return self._local.read_bytes(uri, self.conf.max_image_bytes)
        except ObjectMissingError as exc:
            raise FetchError("missing", str(exc)) from None
        except ObjectTooLargeError as exc:
            raise FetchError("too_large", str(exc)) from None
        except PermissionError as exc:
            raise FetchError("fetch_failed", f"expected a readable file at {uri}: {exc}") from None
        except OSError as exc:
            raise FetchError("fetch_failed", f"reading {uri} failed: {exc}") from None

    def _fetch_s3(self, uri: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError, ReadTimeoutError
        from urllib3.exceptions import ProtocolError, ReadTimeoutError as Urllib3ReadTimeout

        # botocore retries the request itself (adaptive mode: throttling, 5xx, connect/read timeouts), so
        # a timeout that reaches us has used its attempts; a connection dropped mid-body is retried here.
        attempts = max(1, self.conf.fetch_retries)
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                return self.s3.read_bytes(uri, self.conf.max_image_bytes)
            except (ReadTimeoutError, ConnectTimeoutError, Urllib3ReadTimeout, TimeoutError) as exc:
                last = exc
                if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
                    break  # botocore already spent its attempts on this request
            except ProtocolError as exc:
                last = exc
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                raise FetchError("fetch_failed", f"S3 GET {uri} failed with {code}: {exc}") from None
            except BotoCoreError as exc:
                raise FetchError("fetch_failed", f"S3 GET {uri} failed: {exc}") from None
            time.sleep(min(2.0, 0.1 * 2**attempt))
        timed_out = isinstance(last, (ReadTimeoutError, ConnectTimeoutError, Urllib3ReadTimeout, TimeoutError))
        reason = "timeout" if timed_out else "fetch_failed"
        raise FetchError(reason, f"S3 GET {uri}: expected the object within {self.conf.fetch_timeout_s}s x {attempts} attempts, failed: {last}")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], *, threads: int, window: int) -> Iterator[tuple[T, R | BaseException]]:
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
