"""Storage and fetching: local files, S3 against moto's real HTTP server, timeouts, unknown schemes."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import boto3
import pytest

from softlines_attr.config import load_config
from softlines_attr.io.commit import StagedOutput, resolve_current
from softlines_attr.io.fetch import Fetcher, FetchError, ordered_map
from softlines_attr.io.storage import (
    LocalStorage,
    S3Storage,
    UnsupportedSchemeError,
    make_s3_client,
    parse_uri,
    storage_for,
)


def _shard_conf(**over: object):
    import dataclasses

    return dataclasses.replace(load_config().shard, **over)


def test_parse_uri_and_unknown_scheme() -> None:
    assert parse_uri("s3://b/k/x.jpg").bucket == "b" and parse_uri("s3a://b/k").key == "k"
    assert parse_uri("/tmp/a.jpg").scheme == "file" and parse_uri("file:///tmp/a.jpg").key == "/tmp/a.jpg"
    with pytest.raises(UnsupportedSchemeError, match="expected a local path, file:// or s3:// URI, found scheme 'gs'"):
        parse_uri("gs://bucket/key")
    with pytest.raises(UnsupportedSchemeError):
        storage_for("http://example.invalid/x")


def test_local_fetch_reasons(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"12345")
    fetcher = Fetcher(_shard_conf(max_image_bytes=4))
    with pytest.raises(FetchError) as info:
        fetcher.fetch(str(tmp_path / "a.jpg"))
    assert info.value.reason == "too_large"
    for uri, reason in [
        (str(tmp_path / "nope.jpg"), "missing"),
        ("ftp://h/x.jpg", "unsupported_scheme"),
        (str(tmp_path), "missing"),
    ]:
        with pytest.raises(FetchError) as info:
            fetcher.fetch(uri)
        assert info.value.reason == reason
    assert Fetcher(_shard_conf()).fetch(str(tmp_path / "a.jpg")) == b"12345"


def test_ordered_map_keeps_order_and_returns_exceptions() -> None:
    def fn(x: int) -> int:
        if x == 3:
            raise ValueError("three")
        return x * 10

    out = list(ordered_map(fn, range(20), threads=4, window=3))
    assert [i for i, _ in out] == list(range(20))
    assert isinstance(out[3][1], ValueError) and out[4][1] == 40


def test_s3_fetch_upload_multipart_and_staged_commit(s3_endpoint: str, tmp_path: Path) -> None:
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="imgs")
    client.put_object(Bucket="imgs", Key="a/b.jpg", Body=b"jpegbytes")
    fetcher = Fetcher(_shard_conf())
    assert fetcher.fetch("s3://imgs/a/b.jpg") == b"jpegbytes"
    with pytest.raises(FetchError) as info:
        fetcher.fetch("s3://imgs/a/missing.jpg")
    assert info.value.reason == "missing"
    with pytest.raises(FetchError) as info:
        Fetcher(_shard_conf(max_image_bytes=3)).fetch("s3://imgs/a/b.jpg")
    assert info.value.reason == "too_large"

    chunk = 5 * 1024 * 1024  # S3's smallest part size
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (chunk * 2 // 256 + 100))
    storage = S3Storage(make_s3_client(4, 3, 10.0), multipart_chunk_bytes=chunk, threads=4)
    client.put_object(Bucket="imgs", Key="out/shards/old.rec", Body=b"old")  # an older flat layout's output
    client.put_object(Bucket="imgs", Key="out/_summary.json", Body=b'{"job": "shard", "tables": {"shards": "shards"}}')
    staged = StagedOutput("s3://imgs/out", "r1", job="shard")
    staged.prepare()
    assert staged.table_path("shards") == "s3://imgs/out/runs/r1/shards"
    storage.upload_file(str(big), "s3://imgs/out/runs/r1/shards/train/x.rec")
    head = client.head_object(Bucket="imgs", Key="out/runs/r1/shards/train/x.rec")
    assert head["ContentLength"] == big.stat().st_size and "-3" in head["ETag"]  # a 3-part multipart upload
    staged.commit({"ok": True})
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="imgs", Prefix="out/")["Contents"])
    assert [k for k in keys if not k.endswith("/")] == [
        "out/_current.json",
        "out/runs/r1/_summary.json",
        "out/runs/r1/shards/train/x.rec",
    ]
    assert resolve_current("s3://imgs/out") == "s3://imgs/out/runs/r1"


def test_concurrent_s3_fetches_share_one_client(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A task's fetch threads make one GET client between them, not one each (a client costs tens of ms of CPU)."""
    import time

    import softlines_attr.io.fetch as fetch_module

    client = boto3.client("s3", endpoint_url=s3_endpoint)
    client.create_bucket(Bucket="many")
    for i in range(16):
        client.put_object(Bucket="many", Key=f"i/{i}.jpg", Body=f"jpeg{i}".encode())
    made: list[object] = []
    real = fetch_module.make_get_client

    def slow_to_make(*args: object, **kwargs: object) -> object:
        time.sleep(0.05)  # every first fetch of the threads arrives while the first client is being made
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(fetch_module, "make_get_client", slow_to_make)
    fetcher = Fetcher(_shard_conf(fetch_threads=8))
    uris = [f"s3://many/i/{i}.jpg" for i in range(16)]
    out = list(ordered_map(fetcher.fetch, uris, threads=8, window=16))
    assert [data for _, data in out] == [f"jpeg{i}".encode() for i in range(16)]
    assert len(made) == 1 and fetcher.get_client is made[0]


def test_s3_read_timeout_is_a_timeout_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint that accepts connections and never answers: the fetch ends as reason 'timeout'."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    try:
        fetcher = Fetcher(
            _shard_conf(fetch_timeout_s=0.3, fetch_retries=2),
            endpoint_url=f"http://127.0.0.1:{server.getsockname()[1]}",
        )
        with pytest.raises(FetchError) as info:
            fetcher.fetch("s3://imgs/slow.jpg")
        assert info.value.reason == "timeout", str(info.value)
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        server.close()


def test_local_storage_list_and_move(tmp_path: Path) -> None:
    st = LocalStorage()
    st.write_bytes(str(tmp_path / "s" / "a" / "x.rec"), b"abc")
    assert st.list_files(str(tmp_path / "s")) == {"a/x.rec": 3}
    st.move_tree(str(tmp_path / "s"), str(tmp_path / "t"))
    assert st.read_bytes(str(tmp_path / "t" / "a" / "x.rec")) == b"abc"
