"""Hostile image URIs: FIFOs, devices, files larger than they say, slow reads, S3 attempts that multiply."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from softlines_attr.config import load_config
from softlines_attr.io.fetch import Fetcher, FetchError


def _conf(**over: object):
    return dataclasses.replace(load_config().shard, **over)


def _fetch_in_thread(fetcher: Fetcher, uri: str, wait_s: float) -> object:
    """Run a fetch on a daemon thread; its result or exception, or 'hung' after ``wait_s`` (the old code blocks
    forever)."""
    box: list[object] = []

    def run() -> None:
        try:
            box.append(fetcher.fetch(uri))
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(wait_s)
    return box[0] if box else "hung"


def test_fifo_is_refused_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "image.jpg"
    os.mkfifo(fifo)
    result = _fetch_in_thread(Fetcher(_conf()), str(fifo), 5.0)
    if result == "hung":  # unblock the stuck open so the thread ends
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    assert isinstance(result, FetchError), result
    assert result.reason == "not_a_file" and "a FIFO" in str(result)


def test_dev_zero_is_refused_and_never_read_past_the_limit() -> None:
    result = _fetch_in_thread(Fetcher(_conf(max_image_bytes=1024)), "/dev/zero", 5.0)
    assert isinstance(result, FetchError), str(result)[:200]
    assert result.reason == "not_a_file" and "character device" in str(result)


def test_regular_file_at_the_limit_and_one_past_it(tmp_path: Path) -> None:
    (tmp_path / "ok.jpg").write_bytes(b"x" * 1024)
    (tmp_path / "big.jpg").write_bytes(b"x" * 1025)
    fetcher = Fetcher(_conf(max_image_bytes=1024))
    assert fetcher.fetch(str(tmp_path / "ok.jpg")) == b"x" * 1024
    with pytest.raises(FetchError) as info:
        fetcher.fetch(str(tmp_path / "big.jpg"))
    assert info.value.reason == "too_large"


def test_local_read_has_a_deadline(tmp_path: Path) -> None:
    """A local read past fetch_timeout_s ends as a timeout reject (checked between 1 MiB chunks)."""
    big = tmp_path / "big.jpg"
    big.write_bytes(os.urandom(3 << 20))
    fetcher = Fetcher(_conf(fetch_timeout_s=1e-9, max_image_bytes=8 << 20))
    with pytest.raises(FetchError) as info:
        fetcher.fetch(str(big))
    assert info.value.reason == "timeout"
    assert len(Fetcher(_conf(max_image_bytes=8 << 20)).fetch(str(big))) == 3 << 20


class _FlakyS3:
    """A loopback HTTP server: odd requests get 503 SlowDown, even ones headers and half the body, then a close."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.requests = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        self.sock.settimeout(0.1)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                _, buf = buf.split(b"\r\n\r\n", 1)
                self.requests += 1
                if self.requests % 2 == 1:
                    body = b"<?xml version='1.0'?><Error><Code>SlowDown</Code><Message>slow down</Message></Error>"
                    conn.sendall(
                        b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(body), body)
                    )
                else:
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n" + b"x" * 500
                    )
                    conn.close()
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


def test_fetch_retries_is_the_total_number_of_s3_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch_retries = 3: three GETs in all, whatever failed (not botocore's 3 times the outer loop's 3)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    server = _FlakyS3()
    try:
        fetcher = Fetcher(_conf(fetch_retries=3, fetch_timeout_s=2.0), endpoint_url=server.endpoint)
        started = time.monotonic()
        with pytest.raises(FetchError) as info:
            fetcher.fetch("s3://imgs/flaky.jpg")
        assert time.monotonic() - started < 20
        assert info.value.reason == "fetch_failed"
        assert server.requests == 3, (server.requests, fetcher.s3_attempts)
    finally:
        server.close()


def test_s3_body_longer_than_the_limit_is_cut_at_limit_plus_one(s3_endpoint: str) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="hostile")
    client.put_object(Bucket="hostile", Key="ok.jpg", Body=b"y" * 100)
    client.put_object(Bucket="hostile", Key="big.jpg", Body=b"y" * 101)
    fetcher = Fetcher(_conf(max_image_bytes=100))
    assert fetcher.fetch("s3://hostile/ok.jpg") == b"y" * 100
    with pytest.raises(FetchError) as info:
        fetcher.fetch("s3://hostile/big.jpg")
    assert info.value.reason == "too_large"
    with pytest.raises(FetchError) as info:
        fetcher.fetch("s3://hostile/none.jpg")
    assert info.value.reason == "missing" and fetcher.s3_attempts == 3
