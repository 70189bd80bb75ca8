"""Checks made before a cluster or schedule is created, so that a missing role, bucket or release
fails at once with a clear message instead of minutes later inside EMR.

Each check has a planned form (:class:`~softlines_attr.emr.aws.ApiCall`, printed by ``--dry-run``)
and a running form. A check the caller is not allowed to make (AccessDenied on ``iam:GetRole``, say)
is logged and skipped: EMR itself will still refuse what is really missing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from softlines_attr.emr.aws import ApiCall, api_error, client_for, error_code, is_not_found
from softlines_attr.emr.cluster import BOOTSTRAP_SCRIPT
from softlines_attr.emr.errors import EmrPreflightError
from softlines_attr.emr.release import MANIFEST, Release
from softlines_attr.emr.spec import EmrSpec, StepSpec, parse_s3_uri
from softlines_attr.emr.stage import check_bucket
from softlines_attr.emr.steptypes import step_type

if TYPE_CHECKING:  # pragma: no cover
    import boto3

log = logging.getLogger(__name__)

_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "403"}


def _roles(spec: EmrSpec, *, pipeline: bool) -> list[tuple[str, str, str]]:
    """(kind, name, purpose) of the IAM entities a launch (or, with ``pipeline``, a schedule) needs."""
    items = [
        ("role", spec.roles.service_role, "roles.service_role, the EMR service role (emr/iam/emr-service-role.json)"),
        (
            "instance-profile",
            spec.roles.instance_profile,
            "roles.instance_profile, the nodes' instance profile (emr/iam/emr-instance-role.json)",
        ),
    ]
    if spec.roles.autoscaling_role:
        items.append(("role", spec.roles.autoscaling_role, "roles.autoscaling_role"))
    if pipeline:
        items += [
            ("role", spec.schedule.state_machine_role, "schedule.state_machine_role (emr/iam/state-machine-role.json)"),
            ("role", spec.schedule.scheduler_role, "schedule.scheduler_role (emr/iam/scheduler-role.json)"),
        ]
    return items


def release_files_needed(steps: Sequence[StepSpec]) -> list[str]:
    """The release-relative files the bootstrap and the steps use (job files, conf/taxonomy TOMLs)."""
    needed = [BOOTSTRAP_SCRIPT]
    for step in steps:
        needed.append(step_type(step.type).script)
        needed += [v for v in (step.conf, step.taxonomy) if v and not v.startswith("s3://")]
    return sorted(set(needed))


def preflight_calls(spec: EmrSpec, release: Release, *, pipeline: bool) -> list[ApiCall]:
    """The read-only requests the checks make (for ``--dry-run``)."""
    calls = [ApiCall("sts", "GetCallerIdentity", {})]
    for kind, name, _ in _roles(spec, pipeline=pipeline):
        if kind == "role":
            calls.append(ApiCall("iam", "GetRole", {"RoleName": name}))
        else:
            calls.append(ApiCall("iam", "GetInstanceProfile", {"InstanceProfileName": name}))
    for bucket in sorted({release.bucket, parse_s3_uri(spec.log_uri)[0]}):
        calls.append(ApiCall("s3", "HeadBucket", {"Bucket": bucket}))
    calls.append(ApiCall("s3", "GetObject", {"Bucket": release.bucket, "Key": release.key(MANIFEST)}))
    return calls


def check_account(session: boto3.Session, spec: EmrSpec) -> None:
    """The credentials must belong to the spec's account (its ARNs and policies name it)."""
    from botocore.exceptions import ClientError

    try:
        account = client_for(session, "sts").get_caller_identity()["Account"]
    except ClientError as exc:
        raise api_error(exc, "GetCallerIdentity", "checking the credentials' account") from exc
    if account != spec.account_id:
        raise EmrPreflightError(
            f"{spec.source}: account_id is {spec.account_id}, but the credentials in use belong to account {account}; "
            "expected them to match (pick the profile with --profile or AWS_PROFILE)"
        )


def check_iam(session: boto3.Session, spec: EmrSpec, *, pipeline: bool) -> None:
    """Every role and the instance profile exist (skipped, with a warning, where IAM reads are denied)."""
    from botocore.exceptions import ClientError

    iam = client_for(session, "iam")
    for kind, name, purpose in _roles(spec, pipeline=pipeline):
        try:
            if kind == "role":
                iam.get_role(RoleName=name)
            else:
                iam.get_instance_profile(InstanceProfileName=name)
        except ClientError as exc:
            if is_not_found(exc):
                raise EmrPreflightError(
                    f"IAM {kind} {name!r} ({purpose}) does not exist in account {spec.account_id}; expected it to be "
                    "created first (docs/EMR.md, step 2; `softlines-attr emr iam` renders its policy)"
                ) from exc
            if error_code(exc) in _DENIED:
                log.warning("cannot check IAM %s %r (%s): %s; going on", kind, name, error_code(exc), exc)
                continue
            raise api_error(
                exc, "GetRole" if kind == "role" else "GetInstanceProfile", f"checking IAM {kind} {name!r}"
            ) from exc


def read_manifest(session: boto3.Session, release: Release) -> dict[str, Any]:
    """The release's ``MANIFEST.json``; a missing one means the release was never (fully) staged."""
    from botocore.exceptions import ClientError

    try:
        body = client_for(session, "s3").get_object(Bucket=release.bucket, Key=release.key(MANIFEST))["Body"].read()
    except ClientError as exc:
        if is_not_found(exc):
            raise EmrPreflightError(
                f"release {release.release_id} is not staged: {release.uri}{MANIFEST} does not exist; expected a "
                "release uploaded by `softlines-attr emr stage --conf FILE` from this source tree "
                "(or pass --release ID)"
            ) from exc
        raise api_error(exc, "GetObject", f"reading {release.uri}{MANIFEST}") from exc
    return json.loads(body)


def check_release(session: boto3.Session, spec: EmrSpec, release: Release, steps: Iterable[StepSpec]) -> dict[str, Any]:
    """The buckets exist and the release holds the bootstrap script, the job files and conf files."""
    check_bucket(session, release.bucket, "release_prefix")
    log_bucket = parse_s3_uri(spec.log_uri)[0]
    if log_bucket != release.bucket:
        check_bucket(session, log_bucket, "log_uri")
    manifest = read_manifest(session, release)
    present = {f["path"] for f in manifest.get("files", [])}
    missing = [rel for rel in release_files_needed(list(steps)) if rel not in present]
    if missing:
        raise EmrPreflightError(
            f"release {release.uri} lacks {missing}; expected the bootstrap script and every step's job and conf "
            "files (were they in the source tree when it was staged?)"
        )
    return manifest


def run_preflight(
    session: boto3.Session, spec: EmrSpec, release: Release, steps: Sequence[StepSpec], *, pipeline: bool
) -> None:
    """All the checks, in the order of :func:`preflight_calls`."""
    check_account(session, spec)
    check_iam(session, spec, pipeline=pipeline)
    check_release(session, spec, release, steps)
