"""``emr stage``: build the wheel and upload a content-addressed release to S3.

A release is ``<release_prefix><id>/`` holding::

    dist/softlines_attr-<version>-py3-none-any.whl   the package (installed on every node by the bootstrap)
    requirements-emr.txt                              its runtime requirements, without pyspark (EMR's own)
    jobs/*.py  conf/**  emr/**                        the spark-submit entry points, defaults, EMR assets
    SHA256SUMS                                        checked by the bootstrap before installing
    MANIFEST.json                                     uploaded last: a release without it is incomplete

``<id>`` is a digest of the source files (package, setup files, jobs, conf, emr), not of the wheel
(wheels carry timestamps), so the same tree always maps to the same id. A release is never
overwritten: staging an id that already has its ``MANIFEST.json`` uploads nothing. Launch and
schedule check that ``MANIFEST.json`` exists before they point a cluster at a release, so a cluster
or a running schedule never sees a half-uploaded one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.parser import Parser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softlines_attr.emr.aws import ApiCall, api_error, client_for, is_not_found, print_plan, validate_calls
from softlines_attr.emr.errors import EmrPreflightError, EmrStageError
from softlines_attr.emr.spec import EmrSpec, parse_s3_uri, require_no_placeholders

if TYPE_CHECKING:  # pragma: no cover
    import boto3

log = logging.getLogger(__name__)

#: Files and folders of the source tree that make up a release (and its digest).
SOURCE_TOP_FILES: tuple[str, ...] = ("setup.py", "pyproject.toml", "README.md")
SOURCE_DIRS: tuple[str, ...] = ("softlines_attr", "conf", "jobs", "emr")
#: Of those, the folders uploaded as files (the package itself travels inside the wheel).
UPLOADED_DIRS: tuple[str, ...] = ("jobs", "conf", "emr")
_SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ipynb_checkpoints"}
_SKIP_SUFFIXES = {".pyc", ".pyo", ".swp"}
#: Requirements that EMR provides itself and the bootstrap must not install over it.
EMR_PROVIDED = ("pyspark",)
MANIFEST = "MANIFEST.json"
SUMS = "SHA256SUMS"
REQUIREMENTS = "requirements-emr.txt"

_CONTENT_TYPES = {
    ".py": "text/x-python",
    ".sh": "text/x-shellscript",
    ".json": "application/json",
    ".toml": "application/toml",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".whl": "application/zip",
}


# --------------------------------------------------------------------------------------------
# Releases
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """A staged (or to-be-staged) release: its id and S3 location."""

    release_id: str
    uri: str  # s3://bucket/prefix/releases/<id>/

    @property
    def bucket(self) -> str:
        """The release bucket."""
        return parse_s3_uri(self.uri)[0]

    def key(self, rel: str) -> str:
        """The S3 key of release file ``rel`` (``jobs/score.py``)."""
        return parse_s3_uri(self.uri)[1] + rel

    def s3_uri(self, rel: str) -> str:
        """The ``s3://`` URI of release file ``rel``."""
        return self.uri + rel


def release_for(spec: EmrSpec, release_id: str) -> Release:
    """The release ``release_id`` under the spec's ``release_prefix``."""
    return Release(release_id=release_id, uri=f"{spec.release_prefix}{release_id}/")


@dataclass(frozen=True)
class SourceFile:
    """A file of the source tree, with its path relative to the root and its digest."""

    rel: str
    path: Path
    sha256: str
    size: int


def find_source_root(start: Path | None = None) -> Path:
    """The source tree (the folder holding ``setup.py``, ``softlines_attr/``, ``jobs/``, ``emr/``).

    Raises:
        EmrStageError: when run from an installed wheel without a source tree.
    """
    candidates = [start] if start is not None else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for cand in candidates:
        if cand is not None and (cand / "setup.py").is_file() and (cand / "softlines_attr").is_dir() and (cand / "emr").is_dir():
            return cand.resolve()
    raise EmrStageError(
        f"no source tree found in {[str(c) for c in candidates]}; expected a folder with setup.py, "
        "softlines_attr/, jobs/ and emr/ (run from the repository or pass --source DIR; launch and schedule "
        "also take --release ID of a staged release)"
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _iter_files(root: Path, rel_dir: str) -> Iterator[Path]:
    base = root / rel_dir
    if not base.is_dir():
        return
    for path in sorted(base.rglob("*")):
        rel_parts = path.relative_to(root).parts
        if path.is_file() and not (_SKIP_PARTS & set(rel_parts)) and path.suffix not in _SKIP_SUFFIXES and not path.name.startswith("."):
            yield path


def collect_sources(root: Path) -> list[SourceFile]:
    """Every file that goes into a release's digest, sorted by relative path."""
    paths = [root / name for name in SOURCE_TOP_FILES if (root / name).is_file()]
    for rel_dir in SOURCE_DIRS:
        paths.extend(_iter_files(root, rel_dir))
    files = [SourceFile(p.relative_to(root).as_posix(), p, _sha256_file(p), p.stat().st_size) for p in paths]
    return sorted(files, key=lambda f: f.rel)


def release_id_of(files: list[SourceFile]) -> str:
    """The release id: 16 hex digits of a SHA-256 over the sorted (path, file digest) pairs."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.rel}\0{f.sha256}\n".encode())
    return digest.hexdigest()[:16]


def local_release_id(root: Path | None = None) -> str:
    """The id the source tree at ``root`` stages as (what launch/schedule use without ``--release``)."""
    return release_id_of(collect_sources(find_source_root(root)))


# --------------------------------------------------------------------------------------------
# The wheel
# --------------------------------------------------------------------------------------------


def build_wheel(root: Path, out_dir: Path) -> Path:
    """Build the package wheel from a clean copy of the source tree (no network, no build isolation).

    The copy keeps ``build/`` and ``*.egg-info`` out of the working tree and makes the wheel hold
    exactly the files the release digest covers.

    Raises:
        EmrStageError: with the tail of pip's output when the build fails.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="softlines-attr-wheel-") as tmp:
        src = Path(tmp) / "src"
        for f in collect_sources(root):
            target = src / f.rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f.path, target)
        cmd = [
            sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-input",
            "--disable-pip-version-check", "--quiet", "--wheel-dir", str(Path(tmp) / "dist"), str(src),
        ]
        env = {**os.environ, "PIP_NO_INDEX": "1"}
        log.info("building the wheel from %s", root)
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=900, check=False)
        wheels = sorted((Path(tmp) / "dist").glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
            raise EmrStageError(
                f"building the wheel failed (exit {proc.returncode}); expected one .whl in the output, "
                f"found {[w.name for w in wheels]}; needs setuptools>=64 and wheel in this Python:\n{tail}"
            )
        final = out_dir / wheels[0].name
        shutil.copy2(wheels[0], final)
    return final


def wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's runtime requirements (``Requires-Dist`` without extras), minus what EMR provides."""
    with zipfile.ZipFile(wheel) as zf:
        meta_name = next((n for n in zf.namelist() if n.endswith(".dist-info/METADATA")), None)
        if meta_name is None:
            raise EmrStageError(f"{wheel}: expected a .dist-info/METADATA file in the wheel, found none")
        meta = Parser().parsestr(zf.read(meta_name).decode("utf-8"))
    reqs = []
    for req in meta.get_all("Requires-Dist") or []:
        if "extra ==" in req:
            continue
        name = req.split(";")[0].strip()
        base = name.replace(" ", "").split("[")[0]
        for sep in ("=", "<", ">", "!", "~"):
            base = base.split(sep)[0]
        if base.lower() in EMR_PROVIDED:
            continue
        reqs.append(name.replace(" ", ""))
    return reqs


# --------------------------------------------------------------------------------------------
# Planning the upload
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseFile:
    """One object of a release: its relative path, bytes (or a local file), digest and type."""

    rel: str
    sha256: str
    size: int
    content_type: str
    path: Path | None = None
    data: bytes | None = None

    def body(self) -> bytes:
        """The object's bytes."""
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()


def _content_type(rel: str) -> str:
    return _CONTENT_TYPES.get(Path(rel).suffix, "application/octet-stream")


def _from_bytes(rel: str, data: bytes) -> ReleaseFile:
    return ReleaseFile(rel, hashlib.sha256(data).hexdigest(), len(data), _content_type(rel), data=data)


def _git_commit(root: Path) -> dict[str, Any]:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *SOURCE_DIRS, *SOURCE_TOP_FILES], cwd=root, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return {}
    if head.returncode != 0:
        return {}
    return {"git_commit": head.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}


def plan_release_files(root: Path, sources: list[SourceFile], wheel: Path, release_id: str) -> list[ReleaseFile]:
    """The objects of a release in upload order: sources, wheel, requirements, sums, and the manifest last."""
    files = [
        ReleaseFile(s.rel, s.sha256, s.size, _content_type(s.rel), path=s.path)
        for s in sources
        if s.rel.split("/", 1)[0] in UPLOADED_DIRS
    ]
    files.append(ReleaseFile(f"dist/{wheel.name}", _sha256_file(wheel), wheel.stat().st_size, _content_type(wheel.name), path=wheel))
    files.append(_from_bytes(REQUIREMENTS, ("\n".join(wheel_requirements(wheel)) + "\n").encode()))
    sums = "".join(f"{f.sha256}  {f.rel}\n" for f in files)
    files.append(_from_bytes(SUMS, sums.encode()))
    manifest = {
        "release_id": release_id,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wheel": f"dist/{wheel.name}",
        "python": "3.11",
        "requirements": wheel_requirements(wheel),
        "files": [{"path": f.rel, "sha256": f.sha256, "bytes": f.size} for f in files],
        **_git_commit(root),
    }
    files.append(_from_bytes(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode()))
    return files


def put_object_call(release: Release, rf: ReleaseFile) -> ApiCall:
    """The PutObject request for one release file (S3 checks the SHA-256 on receipt)."""
    checksum = base64.b64encode(bytes.fromhex(rf.sha256)).decode()
    params = {
        "Bucket": release.bucket,
        "Key": release.key(rf.rel),
        "ContentType": rf.content_type,
        "ChecksumSHA256": checksum,
        "Metadata": {"softlines-attr-release": release.release_id},
    }
    return ApiCall("s3", "PutObject", params, display={"Body": f"<{rf.size} bytes of {rf.rel}, sha256 {rf.sha256}>"})


def stage_plan(release: Release, files: list[ReleaseFile]) -> list[ApiCall]:
    """Every request ``emr stage`` makes, in order."""
    calls = [
        ApiCall("s3", "HeadBucket", {"Bucket": release.bucket}),
        ApiCall("s3", "HeadObject", {"Bucket": release.bucket, "Key": release.key(MANIFEST)}),
    ]
    note = f"if {MANIFEST} is absent (a staged release is never overwritten)"
    calls.extend(ApiCall(c.service, c.operation, c.params, note, c.display) for c in (put_object_call(release, f) for f in files))
    return calls


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StageResult:
    """What ``emr stage`` did."""

    release: Release
    uploaded: int
    bytes: int
    already_staged: bool

    def to_json(self) -> dict[str, Any]:
        """The JSON summary printed on stdout."""
        return {
            "release_id": self.release.release_id,
            "release_uri": self.release.uri,
            "uploaded_files": self.uploaded,
            "uploaded_bytes": self.bytes,
            "already_staged": self.already_staged,
        }


def check_bucket(session: "boto3.Session", bucket: str, purpose: str) -> None:
    """HeadBucket, turning "no such bucket" and "forbidden" into clear errors."""
    from botocore.exceptions import ClientError

    try:
        client_for(session, "s3").head_bucket(Bucket=bucket)
    except ClientError as exc:
        if is_not_found(exc):
            raise EmrPreflightError(
                f"bucket {bucket!r} ({purpose}) does not exist; expected an existing bucket you can write to "
                "(create it, or fix the URI in the EMR spec)"
            ) from exc
        raise api_error(exc, "HeadBucket", f"checking bucket {bucket!r} ({purpose})") from exc


def release_exists(session: "boto3.Session", release: Release) -> bool:
    """Whether ``release`` is fully staged (its ``MANIFEST.json`` exists)."""
    from botocore.exceptions import ClientError

    try:
        client_for(session, "s3").head_object(Bucket=release.bucket, Key=release.key(MANIFEST))
    except ClientError as exc:
        if is_not_found(exc):
            return False
        raise api_error(exc, "HeadObject", f"looking for release {release.uri}") from exc
    return True


def stage(
    spec: EmrSpec,
    *,
    root: Path | None = None,
    session: "boto3.Session | None" = None,
    dry_run: bool = False,
    wheel: Path | None = None,
    out: Callable[[str], None] = print,
) -> StageResult:
    """Build the wheel and upload the release (or print the requests with ``dry_run``).

    Args:
        spec: The EMR spec (its ``release_prefix``).
        root: The source tree; found automatically when ``None``.
        session: The boto3 session (unused with ``dry_run``).
        dry_run: Print the requests as JSON and call nothing.
        wheel: A wheel already built from ``root`` (skips the build).
        out: Where the JSON goes.

    Returns:
        The :class:`StageResult`.
    """
    root = find_source_root(root)
    sources = collect_sources(root)
    release = release_for(spec, release_id_of(sources))
    if not any(s.rel.startswith("jobs/") for s in sources):
        log.warning("the source tree %s has no jobs/*.py yet: the release will hold no job files", root)
    if not dry_run:
        assert session is not None, "stage needs a boto3 session unless dry_run"
        require_no_placeholders(spec)
        check_bucket(session, release.bucket, "release_prefix")
        if release_exists(session, release):
            log.info("release %s is already staged; nothing to upload", release.uri)
            return StageResult(release, 0, 0, already_staged=True)
    with tempfile.TemporaryDirectory(prefix="softlines-attr-stage-") as tmp:
        wheel = wheel if wheel is not None else build_wheel(root, Path(tmp))
        files = plan_release_files(root, sources, wheel, release.release_id)
        calls = stage_plan(release, files)
        validate_calls(calls)
        if dry_run:
            print_plan(calls, out)
            return StageResult(release, 0, 0, already_staged=False)
        s3 = client_for(session, "s3")
        from botocore.exceptions import ClientError

        total = 0
        for rf, call in zip(files, calls[2:]):
            try:
                s3.put_object(Body=rf.body(), **call.params)
            except ClientError as exc:
                raise api_error(exc, call, f"uploading {rf.rel} to {release.uri}") from exc
            total += rf.size
            log.debug("uploaded %s (%d bytes)", rf.rel, rf.size)
    log.info("staged release %s (%d files, %d bytes)", release.uri, len(files), total)
    return StageResult(release, len(files), total, already_staged=False)
