"""Planning a release's upload: its objects in upload order (the manifest last) and their PutObject requests."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from softlines_attr.emr.aws import ApiCall
from softlines_attr.emr.release import (
    MANIFEST,
    REQUIREMENTS,
    SOURCE_DIRS,
    SOURCE_TOP_FILES,
    SUMS,
    UPLOADED_DIRS,
    Release,
    SourceFile,
    sha256_file,
)
from softlines_attr.emr.wheel import wheel_requirements

_CONTENT_TYPES = {
    ".py": "text/x-python",
    ".sh": "text/x-shellscript",
    ".json": "application/json",
    ".toml": "application/toml",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".whl": "application/zip",
}


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
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", *SOURCE_DIRS, *SOURCE_TOP_FILES],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
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
    files.append(
        ReleaseFile(
            f"dist/{wheel.name}", sha256_file(wheel), wheel.stat().st_size, _content_type(wheel.name), path=wheel
        )
    )
    files.append(_from_bytes(REQUIREMENTS, ("\n".join(wheel_requirements(wheel)) + "\n").encode()))
    sums = "".join(f"{f.sha256}  {f.rel}\n" for f in files)
    files.append(_from_bytes(SUMS, sums.encode()))
    manifest = {
        "release_id": release_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
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
    calls.extend(
        ApiCall(c.service, c.operation, c.params, note, c.display) for c in (put_object_call(release, f) for f in files)
    )
    return calls
