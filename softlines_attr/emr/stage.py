"""``emr stage``: build the wheel and upload a content-addressed release to S3.

The release's layout and id are :mod:`release`; the wheel :mod:`wheel`; the objects and their
requests :mod:`upload`. A release is never overwritten: staging an id that already has its
``MANIFEST.json`` uploads nothing. Launch and schedule check that ``MANIFEST.json`` exists before
they point a cluster at a release, so a cluster or a running schedule never sees a half-uploaded one.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from softlines_attr.emr.aws import api_error, client_for, is_not_found, print_plan, validate_calls
from softlines_attr.emr.errors import EmrPreflightError
from softlines_attr.emr.placeholders import require_no_placeholders
from softlines_attr.emr.release import MANIFEST, Release, collect_sources, find_source_root, release_id_of
from softlines_attr.emr.spec import EmrSpec
from softlines_attr.emr.upload import plan_release_files, stage_plan
from softlines_attr.emr.wheel import build_wheel

if TYPE_CHECKING:  # pragma: no cover
    import boto3

log = logging.getLogger(__name__)


def release_for(spec: EmrSpec, release_id: str) -> Release:
    """The release ``release_id`` under the spec's ``release_prefix``."""
    return Release(release_id=release_id, uri=f"{spec.release_prefix}{release_id}/")


def local_release_id(root: Path | None = None) -> str:
    """The id the source tree at ``root`` stages as (what launch/schedule use without ``--release``)."""
    return release_id_of(collect_sources(find_source_root(root)))


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


def check_bucket(session: boto3.Session, bucket: str, purpose: str) -> None:
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


def release_exists(session: boto3.Session, release: Release) -> bool:
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
    session: boto3.Session | None = None,
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
