"""The filesystem of an output URI (pyarrow, local or S3) and the few file operations the commit needs.

All file operations of the versioned outputs go through one :class:`pyarrow.fs.FileSystem`
(``LocalFileSystem`` or ``S3FileSystem``, see :func:`filesystem_for`); tests wrap it to kill the
process at each step.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

import pyarrow.fs as pafs

from softlines_attr.io.errors import OutputLocationError
from softlines_attr.io.storage import parse_uri

log = logging.getLogger(__name__)


def _endpoint() -> tuple[str | None, str]:
    """``AWS_ENDPOINT_URL_S3`` as pyarrow's (endpoint_override, scheme)."""
    url = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if not url:
        return None, "https"
    parsed = urlparse(url if "://" in url else f"https://{url}")
    return parsed.netloc, parsed.scheme or "https"


def _bucket_region(bucket: str) -> str | None:
    """The bucket's region as S3 reports it (an EMR node may run in another region than the bucket); None if unknown."""
    try:
        return pafs.resolve_s3_region(bucket)
    except OSError as exc:
        log.warning("cannot resolve the region of bucket %s (%s); using the SDK default", bucket, exc)
        return None


def filesystem_for(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem for ``uri`` and the path of ``uri`` on it.

    Local paths (and ``file://``) get :class:`pyarrow.fs.LocalFileSystem` and an absolute path; ``s3://``
    (``s3a``, ``s3n``) gets :class:`pyarrow.fs.S3FileSystem` (endpoint from ``AWS_ENDPOINT_URL_S3``,
    region from ``AWS_DEFAULT_REGION``, credentials from the usual chain) and ``bucket/key``.

    Raises:
        UnsupportedSchemeError: any other scheme.
    """
    loc = parse_uri(uri)
    if loc.scheme == "s3":
        endpoint, scheme = _endpoint()
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region is None and endpoint is None:
            region = _bucket_region(loc.bucket)
        fs = pafs.S3FileSystem(
            endpoint_override=endpoint, scheme=scheme, region=region or "us-east-1", allow_bucket_creation=False
        )
        return fs, f"{loc.bucket}/{loc.key}".rstrip("/")
    return pafs.LocalFileSystem(), os.path.abspath(loc.key)


def normalize_out(uri: str) -> str:
    """An output URI as summaries record it: an absolute local path, or the ``s3://`` URI without a trailing slash."""
    loc = parse_uri(uri)
    return uri.rstrip("/") if loc.scheme == "s3" else os.path.abspath(loc.key)


def is_local_fs(fs: pafs.FileSystem) -> bool:
    """Whether ``fs`` is the local filesystem (renames are atomic there)."""
    return fs.type_name.endswith("local")


READ_ATTEMPTS = 5


def read_bytes(fs: pafs.FileSystem, path: str) -> bytes | None:
    """A small file's bytes, whole, or None when there is no file at ``path``.

    On S3 a read is a HEAD (for the size) and then a ranged GET, so an object replaced between the two
    reads as a prefix of the new object (or worse): a reader of ``_current.json`` during a commit would
    see truncated JSON. The read is therefore checked against a HEAD after it (same size as the bytes
    read, same modification time as before) and done again when the object changed under it.

    Raises:
        OutputLocationError: a folder at ``path``, or an object that changed under every one of
            ``READ_ATTEMPTS`` reads.
    """
    for _ in range(READ_ATTEMPTS):
        before = fs.get_file_info(path)
        if before.type == pafs.FileType.NotFound:
            return None
        if before.type != pafs.FileType.File:
            raise OutputLocationError(f"expected a file at {path}, found a {before.type.name.lower()}")
        try:
            with fs.open_input_stream(path) as fh:
                data = fh.read()
        except FileNotFoundError:
            continue  # deleted between the HEAD and the GET: look again
        except OSError as exc:
            if is_local_fs(fs):
                raise
            log.info("reading %s failed (%s); the object may have changed under the read, reading again", path, exc)
            continue
        if is_local_fs(fs):
            return data  # a local file is replaced by a rename: an open file keeps its whole content
        after = fs.get_file_info(path)
        if after.type == pafs.FileType.File and after.size == len(data) == before.size and after.mtime == before.mtime:
            return data
        log.info("%s changed while it was read (%d bytes read, %s now); reading again", path, len(data), after.size)
    raise OutputLocationError(
        f"expected {path} to hold still for one read, found it replaced during each of {READ_ATTEMPTS} reads"
    )


def write_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write ``data`` so that readers see the old file or the whole new one, never a part.

    Local: a temporary name in the same folder, then a rename over ``path``. S3: one object write
    (a PUT, or a multipart upload that completes in one step).
    """
    if is_local_fs(fs):
        parent = path.rsplit("/", 1)[0]
        tmp = f"{parent}/.{path.rsplit('/', 1)[1]}.tmp-{os.getpid()}"
        with fs.open_output_stream(tmp) as fh:
            fh.write(data)
        fs.move(tmp, path)
    else:
        with fs.open_output_stream(path) as fh:
            fh.write(data)


def delete_path(fs: pafs.FileSystem, path: str) -> None:
    """Delete a file or a folder tree at ``path``; nothing when absent."""
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.Directory:
        fs.delete_dir(path)
    elif info.type != pafs.FileType.NotFound:
        fs.delete_file(path)


def list_dirs(fs: pafs.FileSystem, path: str) -> list[str]:
    """Names of the folders directly under ``path`` (none when absent)."""
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    return sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(path)) if i.type == pafs.FileType.Directory)
