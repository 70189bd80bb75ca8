"""``emr launch``, ``emr add-steps`` and ``emr wait``.

``launch`` creates a cluster from the spec (transient by default: every step has
ActionOnFailure=TERMINATE_CLUSTER and the cluster ends with its last step). ``add-steps`` appends the
spec's steps to a running cluster, using the release the cluster was bootstrapped with (its
``softlines-attr:release`` tag), so job files always match the installed wheel. ``wait`` follows the
steps with botocore's ``step_complete`` waiter, logging progress between waiter rounds; on a failed
step it prints EMR's reason and the tail of the step's stderr from the log URI, makes sure a
transient cluster is terminating, and exits non-zero.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from softlines_attr.config import load_spark_profile
from softlines_attr.emr.aws import ApiCall, api_error, client_for, print_plan, send, validate_calls
from softlines_attr.emr.cluster import RELEASE_TAG
from softlines_attr.emr.errors import EmrError, EmrWaitTimeoutError
from softlines_attr.emr.failure import step_failure
from softlines_attr.emr.placeholders import require_no_placeholders
from softlines_attr.emr.preflight import preflight_calls, run_preflight
from softlines_attr.emr.release import Release
from softlines_attr.emr.requests import add_job_flow_steps_request, run_job_flow_request
from softlines_attr.emr.spec import EmrSpec
from softlines_attr.emr.stage import release_for
from softlines_attr.emr.steps import select_steps

if TYPE_CHECKING:  # pragma: no cover
    import boto3

log = logging.getLogger(__name__)

ACTIVE_CLUSTER_STATES = ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING")
OPEN_STEP_STATES = ("PENDING", "CANCEL_PENDING", "RUNNING")
FAILED_STEP_STATES = ("FAILED", "CANCELLED", "INTERRUPTED")


def profile_conf(spec: EmrSpec) -> dict[str, str]:
    """The Spark profile's settings (``conf/spark/<spark_profile>.toml``)."""
    return dict(load_spark_profile(spec.spark_profile).conf)


# --------------------------------------------------------------------------------------------
# launch
# --------------------------------------------------------------------------------------------


def launch_plan(
    spec: EmrSpec, release: Release, *, transient: bool, step_names: Sequence[str] | None = None
) -> list[ApiCall]:
    """The requests ``emr launch`` makes: the read-only checks, then RunJobFlow."""
    steps = select_steps(spec, step_names)
    request = run_job_flow_request(spec, release, profile_conf(spec), transient=transient, steps=steps)
    return [*preflight_calls(spec, release, pipeline=False), ApiCall("emr", "RunJobFlow", request)]


def launch(
    spec: EmrSpec,
    release: Release,
    *,
    session: boto3.Session | None,
    dry_run: bool = False,
    transient: bool | None = None,
    step_names: Sequence[str] | None = None,
    out: Callable[[str], None] = print,
) -> str | None:
    """Create the cluster (or print the requests).

    Args:
        spec: The EMR spec.
        release: The staged release to install and run.
        session: The boto3 session (unused with ``dry_run``).
        dry_run: Print the requests as JSON and call nothing.
        transient: Override the spec's ``transient``.
        step_names: Run only these steps (default: all).
        out: Where the JSON goes.

    Returns:
        The new cluster's id (``None`` with ``dry_run``).
    """
    transient = spec.transient if transient is None else transient
    calls = launch_plan(spec, release, transient=transient, step_names=step_names)
    validate_calls(calls)
    if dry_run:
        print_plan(calls, out)
        return None
    assert session is not None, "launch needs a boto3 session unless dry_run"
    require_no_placeholders(spec)
    run_preflight(session, spec, release, select_steps(spec, step_names), pipeline=False)
    response = send(session, calls[-1], "launching the cluster")
    cluster_id = response["JobFlowId"]
    log.info(
        "cluster %s (%s) starting with release %s",
        cluster_id,
        "transient" if transient else "kept alive",
        release.release_id,
    )
    out(
        json.dumps(
            {
                "ClusterId": cluster_id,
                "ClusterArn": response.get("ClusterArn"),
                "release": release.uri,
                "transient": transient,
            }
        )
    )
    return cluster_id


# --------------------------------------------------------------------------------------------
# add-steps
# --------------------------------------------------------------------------------------------


def cluster_release(session: boto3.Session, spec: EmrSpec, cluster_id: str) -> tuple[Release | None, dict[str, Any]]:
    """The release a cluster was bootstrapped with (from its tag), and its description."""
    from botocore.exceptions import ClientError

    try:
        cluster = client_for(session, "emr").describe_cluster(ClusterId=cluster_id)["Cluster"]
    except ClientError as exc:
        raise api_error(exc, "DescribeCluster", f"looking up cluster {cluster_id}") from exc
    tags = {t["Key"]: t["Value"] for t in cluster.get("Tags", [])}
    rid = tags.get(RELEASE_TAG)
    return (release_for(spec, rid) if rid else None), cluster


def add_steps(
    spec: EmrSpec,
    cluster_id: str,
    *,
    session: boto3.Session | None,
    release: Release | None = None,
    dry_run: bool = False,
    step_names: Sequence[str] | None = None,
    out: Callable[[str], None] = print,
) -> list[str]:
    """Append the spec's steps to a running cluster (or print the requests).

    Without ``release`` the cluster's own release (its ``softlines-attr:release`` tag) is used, so the
    job files match the wheel its nodes installed.

    Returns:
        The new step ids (``[]`` with ``dry_run``).
    """
    steps = select_steps(spec, step_names)
    if dry_run:
        if release is None:
            raise EmrError(
                "add-steps --dry-run cannot read the cluster's release tag (it calls nothing); expected --release ID"
            )
        calls = [
            ApiCall("emr", "DescribeCluster", {"ClusterId": cluster_id}),
            ApiCall("emr", "AddJobFlowSteps", add_job_flow_steps_request(spec, release, cluster_id, steps)),
        ]
        validate_calls(calls)
        print_plan(calls, out)
        return []
    assert session is not None, "add-steps needs a boto3 session unless dry_run"
    require_no_placeholders(spec)
    tagged, cluster = cluster_release(session, spec, cluster_id)
    state = cluster["Status"]["State"]
    if state not in ACTIVE_CLUSTER_STATES:
        raise EmrError(
            f"cluster {cluster_id} is {state}; expected one of {list(ACTIVE_CLUSTER_STATES)} to add steps to"
        )
    if release is None:
        if tagged is None:
            raise EmrError(
                f"cluster {cluster_id} has no {RELEASE_TAG!r} tag (not launched by softlines-attr?); "
                "expected --release ID"
            )
        release = tagged
    elif tagged is not None and tagged.release_id != release.release_id:
        log.warning(
            "cluster %s runs release %s; adding steps of release %s (its job files, the cluster's wheel)",
            cluster_id,
            tagged.release_id,
            release.release_id,
        )
    from softlines_attr.emr.preflight import check_release

    check_release(session, spec, release, steps)
    call = ApiCall("emr", "AddJobFlowSteps", add_job_flow_steps_request(spec, release, cluster_id, steps))
    validate_calls([call])
    step_ids = list(send(session, call, f"adding steps to {cluster_id}")["StepIds"])
    out(json.dumps({"ClusterId": cluster_id, "StepIds": step_ids, "release": release.uri}))
    return step_ids


# --------------------------------------------------------------------------------------------
# wait
# --------------------------------------------------------------------------------------------


@dataclass
class StepOutcome:
    """How one step ended."""

    step_id: str
    name: str
    state: str
    seconds: float | None = None


@dataclass
class WaitResult:
    """What ``emr wait`` saw."""

    cluster_id: str
    cluster_state: str
    steps: list[StepOutcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The JSON summary printed on stdout."""
        return {
            "ClusterId": self.cluster_id,
            "ClusterState": self.cluster_state,
            "Steps": [{"Id": s.step_id, "Name": s.name, "State": s.state, "Seconds": s.seconds} for s in self.steps],
        }


def wait_plan(cluster_id: str) -> list[ApiCall]:
    """The requests ``emr wait`` repeats (the waiter polls DescribeStep)."""
    return [
        ApiCall("emr", "DescribeCluster", {"ClusterId": cluster_id}),
        ApiCall("emr", "ListSteps", {"ClusterId": cluster_id}),
        ApiCall(
            "emr",
            "DescribeStep",
            {"ClusterId": cluster_id, "StepId": "<each step, every poll_seconds>"},
            "waiter step_complete",
        ),
        ApiCall(
            "s3",
            "GetObject",
            {"Bucket": "<log bucket>", "Key": f"<log prefix>/{cluster_id}/steps/<step>/stderr.gz"},
            "if a step fails",
        ),
        ApiCall(
            "emr",
            "TerminateJobFlows",
            {"JobFlowIds": [cluster_id]},
            "if a step fails on a transient cluster that is not terminating yet",
        ),
    ]


def list_steps_oldest_first(session: boto3.Session, cluster_id: str) -> list[dict[str, Any]]:
    """Every step of the cluster, in the order they were added."""
    from botocore.exceptions import ClientError

    emr = client_for(session, "emr")
    steps: list[dict[str, Any]] = []
    try:
        for page in emr.get_paginator("list_steps").paginate(ClusterId=cluster_id):
            steps.extend(page.get("Steps", []))
    except ClientError as exc:
        raise api_error(exc, "ListSteps", f"listing the steps of {cluster_id}") from exc
    steps.reverse()  # ListSteps returns the newest first
    return steps


def _elapsed(step: dict[str, Any]) -> float | None:
    timeline = step.get("Status", {}).get("Timeline", {})
    start, end = timeline.get("StartDateTime"), timeline.get("EndDateTime")
    if start and end:
        return round((end - start).total_seconds(), 1)
    return None


def _wait_step(
    session: boto3.Session, spec: EmrSpec, cluster_id: str, step: dict[str, Any], label: str, deadline: float
) -> dict[str, Any]:
    """Wait for one step with the ``step_complete`` waiter; return its final description."""
    from botocore.exceptions import WaiterError

    emr = client_for(session, "emr")
    waiter = emr.get_waiter("step_complete")
    poll = spec.wait.poll_seconds
    started = time.monotonic()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise EmrWaitTimeoutError(
                f"step {label} ({step['Id']}) on {cluster_id} did not end within "
                f"wait.timeout_minutes = {spec.wait.timeout_minutes}; "
                "expected COMPLETED or FAILED (the cluster is left as it is)"
            )
        attempts = max(1, min(10, int(remaining // max(poll, 1))))
        try:
            waiter.wait(ClusterId=cluster_id, StepId=step["Id"], WaiterConfig={"Delay": poll, "MaxAttempts": attempts})
        except WaiterError as exc:
            last = exc.last_response or {}
            if "Error" in last:
                raise EmrError(
                    f"waiting for step {label} ({step['Id']}): DescribeStep failed: {last['Error']}"
                ) from exc
            state = last.get("Step", {}).get("Status", {}).get("State", "?")
            if state in FAILED_STEP_STATES:
                return last["Step"]
            log.info("step %s: %s for %.0f s", label, state, time.monotonic() - started)
            continue
        return emr.describe_step(ClusterId=cluster_id, StepId=step["Id"])["Step"]


def wait(
    spec: EmrSpec,
    cluster_id: str,
    *,
    session: boto3.Session | None,
    dry_run: bool = False,
    until_terminated: bool = False,
    out: Callable[[str], None] = print,
) -> WaitResult | None:
    """Follow every step of ``cluster_id`` to its end (or print the requests).

    Raises:
        EmrStepFailedError: a step failed or was cancelled (after the report and the termination).
        EmrWaitTimeoutError: ``wait.timeout_minutes`` passed.
    """
    if dry_run:
        calls = wait_plan(cluster_id)
        print_plan(calls, out)
        return None
    assert session is not None, "wait needs a boto3 session unless dry_run"
    deadline = time.monotonic() + spec.wait.timeout_minutes * 60
    _, cluster = cluster_release(session, spec, cluster_id)
    log.info("cluster %s is %s", cluster_id, cluster["Status"]["State"])
    steps = list_steps_oldest_first(session, cluster_id)
    result = WaitResult(cluster_id, cluster["Status"]["State"])
    for index, step in enumerate(steps, 1):
        label = f"{index}/{len(steps)} {step['Name']!r}"
        if step["Status"]["State"] in OPEN_STEP_STATES:
            log.info("step %s: %s; waiting", label, step["Status"]["State"])
            step = _wait_step(session, spec, cluster_id, step, label, deadline)
        state = step["Status"]["State"]
        result.steps.append(StepOutcome(step["Id"], step["Name"], state, _elapsed(step)))
        if state in FAILED_STEP_STATES:
            raise step_failure(session, spec, cluster_id, step, label)
        log.info("step %s: %s", label, state)
    if until_terminated:
        _wait_terminated(session, spec, cluster_id, deadline)
    result.cluster_state = client_for(session, "emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"][
        "State"
    ]
    out(json.dumps(result.to_json(), default=str))
    return result


def _wait_terminated(session: boto3.Session, spec: EmrSpec, cluster_id: str, deadline: float) -> None:
    from botocore.exceptions import WaiterError

    waiter = client_for(session, "emr").get_waiter("cluster_terminated")
    poll = spec.wait.poll_seconds
    attempts = max(1, int((deadline - time.monotonic()) // max(poll, 1)))
    try:
        waiter.wait(ClusterId=cluster_id, WaiterConfig={"Delay": poll, "MaxAttempts": attempts})
    except WaiterError as exc:
        state = (exc.last_response or {}).get("Cluster", {}).get("Status", {}).get("State")
        if state != "TERMINATED_WITH_ERRORS":
            raise EmrWaitTimeoutError(
                f"cluster {cluster_id} did not terminate in time; expected TERMINATED, found {state}"
            ) from exc
