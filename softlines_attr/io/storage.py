"""Object storage for the shard job: local paths and S3 (through boto3), behind one small interface.

``s3://`` (also ``s3a://``, ``s3n://``) goes to S3; a plain path or ``file://`` is local; anything
else raises :class:`UnsupportedSchemeError`. The S3 endpoint comes from the standard
``AWS_ENDPOINT_URL_S3`` environment variable when set (tests point it at a loopback server), and
credentials from boto3's usual chain (instance profile on EMR).

This is the data plane (image reads, shard uploads from the tasks); committing a job's output is
:class:`softlines_attr.io.commit.StagedOutput`, one implementation for local paths and S3.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from softlines_attr.errors import SoftlinesAttrError

log = logging.getLogger(__name__)

S3_SCHEMES = frozenset({"s3", "s3a", "s3n"})


class UnsupportedSchemeError(SoftlinesAttrError):
    """A URI whose scheme no storage here handles."""


class ObjectMissingError(SoftlinesAttrError):
    """The file or object does not exist."""


class ObjectTooLargeError(SoftlinesAttrError):
    """The file or object is larger than the caller accepts."""


@dataclass(frozen=True)
class Location:
    """A parsed URI: ``scheme`` is ``s3`` or ``file``; ``bucket`` is empty for local paths."""

    scheme: str
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}" if self.scheme == "s3" else self.key


def parse_uri(uri: str) -> Location:
    """Split ``uri`` into scheme, bucket and key (or local path).

    Raises:
        UnsupportedSchemeError: for a scheme other than s3/s3a/s3n/file or a bare path.
    """
    if not uri:
        raise UnsupportedSchemeError("expected a local path or an s3://bucket/key URI, found an empty string")
    parsed = urlparse(uri)
    scheme = parsed.scheme.lower()
    if scheme in S3_SCHEMES:
        if not parsed.netloc:
            raise UnsupportedSchemeError(f"expected s3://bucket/key, found {uri!r} (no bucket)")
        return Location("s3", parsed.netloc, parsed.path.lstrip("/"))
    if scheme == "file":
        return Location("file", "", parsed.path)
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return Location("file", "", uri)
    raise UnsupportedSchemeError(f"expected a local path, file:// or s3:// URI, found scheme {scheme!r} in {uri!r}")


def join_uri(root: str, *parts: str) -> str:
    """Join path parts onto a local path or URI with ``/``."""
    return "/".join([root.rstrip("/"), *(p.strip("/") for p in parts)])


def is_s3(uri: str) -> bool:
    """True when ``uri`` names S3."""
    return parse_uri(uri).scheme == "s3"


def make_s3_client(pool_size: int, retries: int, timeout_s: float, endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client: adaptive retries, a connection pool of ``pool_size``, timeouts.

    Args:
        pool_size: Max pooled connections (the number of threads sharing the client).
        retries: Total attempts per request (botocore ``max_attempts``).
        timeout_s: Connect and read timeout per request.
        endpoint_url: An explicit endpoint; by default ``AWS_ENDPOINT_URL_S3`` (or AWS's).

    Returns:
        A thread-safe ``botocore`` S3 client.
    """
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"mode": "adaptive", "max_attempts": max(1, retries)},
        max_pool_connections=max(1, pool_size),
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        s3={"addressing_style": "path"} if (endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")) else None,
    )
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or None, config=config
    )


class Storage(Protocol):
    """The operations the shard job needs on its output (and input) locations."""

    def read_bytes(self, uri: str, max_bytes: int | None = None) -> bytes: ...

    def write_bytes(self, uri: str, data: bytes) -> None: ...

    def upload_file(self, local_path: str, uri: str) -> None: ...

    def list_files(self, uri: str) -> dict[str, int]: ...

    def delete_tree(self, uri: str) -> None: ...

    def move_tree(self, src: str, dst: str) -> None: ...


class LocalStorage:
    """Local files (``os``/``shutil``); writes are atomic renames from a temporary name."""

    def read_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        """Read a whole file, refusing one over ``max_bytes``."""
        path = parse_uri(uri).key
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    raise ObjectTooLargeError(f"expected at most {max_bytes} bytes, found {size} in {uri}")
                return fh.read()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectMissingError(f"expected a file at {uri}, found none") from None
        except IsADirectoryError:
            raise ObjectMissingError(f"expected a file at {uri}, found a directory") from None

    def write_bytes(self, uri: str, data: bytes) -> None:
        path = Path(parse_uri(uri).key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def upload_file(self, local_path: str, uri: str) -> None:
        path = Path(parse_uri(uri).key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, path)

    def list_files(self, uri: str) -> dict[str, int]:
        """Relative path -> size of every file under ``uri`` (recursive)."""
        root = Path(parse_uri(uri).key)
        if not root.is_dir():
            return {}
        return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}

    def delete_tree(self, uri: str) -> None:
        path = Path(parse_uri(uri).key)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def move_tree(self, src: str, dst: str) -> None:
        dst_path = Path(parse_uri(dst).key)
        dst_path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(parse_uri(src).key, dst_path)


class S3Storage:
    """S3 through one boto3 client (shared by the threads of one task); multipart uploads."""

    def __init__(self, client: Any, multipart_chunk_bytes: int = 16 * 1024 * 1024, threads: int = 4) -> None:
        from boto3.s3.transfer import TransferConfig

        self.client = client
        self._transfer = TransferConfig(
            multipart_threshold=multipart_chunk_bytes,
            multipart_chunksize=multipart_chunk_bytes,
            max_concurrency=max(1, threads),
            use_threads=threads > 1,
        )

    def read_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        """GET one object, refusing one over ``max_bytes`` before reading its body."""
        from botocore.exceptions import ClientError

        loc = parse_uri(uri)
        try:
            resp = self.client.get_object(Bucket=loc.bucket, Key=loc.key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NoSuchBucket", "NotFound"):
                raise ObjectMissingError(f"expected an object at {uri}, found none ({code})") from None
            raise
        body = resp["Body"]
        try:
            size = int(resp.get("ContentLength", 0))
            if max_bytes is not None and size > max_bytes:
                raise ObjectTooLargeError(f"expected at most {max_bytes} bytes, found {size} in {uri}")
            return body.read()
        finally:
            body.close()

    def write_bytes(self, uri: str, data: bytes) -> None:
        loc = parse_uri(uri)
        self.client.upload_fileobj(io.BytesIO(data), loc.bucket, loc.key, Config=self._transfer)

    def upload_file(self, local_path: str, uri: str) -> None:
        """Upload a file (multipart past the chunk size); the object appears whole or not at all."""
        loc = parse_uri(uri)
        self.client.upload_file(local_path, loc.bucket, loc.key, Config=self._transfer)

    def list_files(self, uri: str) -> dict[str, int]:
        """Relative key -> size of every object under the prefix ``uri/``."""
        loc = parse_uri(uri)
        prefix = loc.key.rstrip("/") + "/"
        found: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                found[obj["Key"][len(prefix) :]] = int(obj["Size"])
        return found

    def delete_tree(self, uri: str) -> None:
        loc = parse_uri(uri)
        keys = [join_uri(loc.key, rel) for rel in self.list_files(uri)]
        keys += [loc.key] if loc.key else []
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=loc.bucket, Delete={"Objects": batch, "Quiet": True})

    def move_tree(self, src: str, dst: str) -> None:
        """Server-side copy of every object under ``src`` to ``dst``, then delete the sources."""
        s, d = parse_uri(src), parse_uri(dst)
        for rel in self.list_files(src):
            self.client.copy(
                {"Bucket": s.bucket, "Key": join_uri(s.key, rel)}, d.bucket, join_uri(d.key, rel), Config=self._transfer
            )
        self.delete_tree(src)


def storage_for(
    uri: str,
    *,
    threads: int = 4,
    retries: int = 5,
    timeout_s: float = 30.0,
    multipart_chunk_bytes: int = 16 * 1024 * 1024,
) -> Storage:
    """The storage for ``uri``'s scheme (a new S3 client for S3)."""
    if parse_uri(uri).scheme == "s3":
        return S3Storage(make_s3_client(threads, retries, timeout_s), multipart_chunk_bytes, threads)
    return LocalStorage()


def download_tree(uri: str, dest: Path) -> list[str]:
    """Copy every object under ``uri`` (local or s3://) into the local folder ``dest``; returns the relative paths.

    Folder markers (``<prefix>/`` objects, which pyarrow's ``create_dir`` writes on S3) are not files and are
    skipped. For small trees (a bundle, refine shards): each object is read whole into memory.
    """
    storage = storage_for(uri)
    copied = []
    for rel in sorted(storage.list_files(uri)):
        if not rel or rel.endswith("/"):
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(storage.read_bytes(join_uri(uri, rel)))
        copied.append(rel)
    return copied
