"""``emr schedule``: create or update, idempotently, the Step Functions state machine and the
EventBridge Scheduler schedule that starts it on the spec's cron.

Why a state machine rather than a universal target calling ``RunJobFlow`` directly (docs/EMR.md has
the longer version): a step that hangs keeps a GPU cluster billing until someone notices; EMR has no
step time limit, the idle auto-termination does not fire while a step runs, and ActionOnFailure only
acts on failures. The state machine gives every step a time limit and routes every way out, success,
failure or timeout, through ``terminateCluster.sync``; each run is also an execution with its own
history, status and CloudWatch metrics to alarm on.

Both resources are looked up by name and compared with the desired state first: an unchanged spec
makes no write, a changed one updates in place, and a schedule is never created twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from softlines_attr.emr.aws import ApiCall, api_error, client_for, is_not_found, print_plan, send, validate_calls
from softlines_attr.emr.placeholders import require_no_placeholders
from softlines_attr.emr.preflight import preflight_calls, run_preflight
from softlines_attr.emr.release import Release
from softlines_attr.emr.requests import state_machine_arn
from softlines_attr.emr.run import profile_conf
from softlines_attr.emr.spec import EmrSpec
from softlines_attr.emr.workflow import (
    create_state_machine_request,
    schedule_request,
    state_machine_definition,
    update_state_machine_request,
)

if TYPE_CHECKING:  # pragma: no cover
    import boto3

log = logging.getLogger(__name__)

_COMPARED_SCHEDULE_KEYS = (
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "Description",
    "State",
    "FlexibleTimeWindow",
    "ActionAfterCompletion",
)


@dataclass(frozen=True)
class ScheduleResult:
    """What ``emr schedule`` did to each resource: ``created``, ``updated`` or ``unchanged``."""

    state_machine_arn: str
    state_machine: str
    schedule_name: str
    schedule: str
    release: str
    audit_schedule_name: str = ""
    audit_schedule: str = ""

    def to_json(self) -> dict[str, Any]:
        """The JSON summary printed on stdout."""
        out = {
            "StateMachineArn": self.state_machine_arn,
            "StateMachine": self.state_machine,
            "Schedule": self.schedule_name,
            "ScheduleAction": self.schedule,
            "release": self.release,
        }
        if self.audit_schedule_name:
            out.update({"AuditSchedule": self.audit_schedule_name, "AuditScheduleAction": self.audit_schedule})
        return out


def schedule_plan(spec: EmrSpec, release: Release) -> list[ApiCall]:
    """Every request ``emr schedule`` may make, with when each write happens."""
    definition = state_machine_definition(spec, release, profile_conf(spec))
    calls = [
        *preflight_calls(spec, release, pipeline=True),
        ApiCall("stepfunctions", "DescribeStateMachine", {"stateMachineArn": state_machine_arn(spec)}),
        ApiCall(
            "stepfunctions",
            "CreateStateMachine",
            create_state_machine_request(spec, definition),
            "if DescribeStateMachine found none",
        ),
        ApiCall(
            "stepfunctions",
            "UpdateStateMachine",
            update_state_machine_request(spec, definition),
            "if it exists with another definition or role",
        ),
    ]
    if spec.schedule.group != "default":
        calls += [
            ApiCall("scheduler", "GetScheduleGroup", {"Name": spec.schedule.group}),
            ApiCall(
                "scheduler", "CreateScheduleGroup", {"Name": spec.schedule.group}, "if GetScheduleGroup found none"
            ),
        ]
    for sched in schedule_requests(spec):
        calls += [
            ApiCall("scheduler", "GetSchedule", {"Name": sched["Name"], "GroupName": sched["GroupName"]}),
            ApiCall("scheduler", "CreateSchedule", sched, "if GetSchedule found none"),
            ApiCall("scheduler", "UpdateSchedule", sched, "if it exists with other settings"),
        ]
    return calls


def schedule_requests(spec: EmrSpec) -> list[dict[str, Any]]:
    """The pipeline's schedule request, and the audit's when the spec has one."""
    requests = [schedule_request(spec)]
    if spec.schedule.audit_name:
        requests.append(schedule_request(spec, audit=True))
    return requests


def _by_operation(calls: list[ApiCall], operation: str) -> ApiCall:
    return next(c for c in calls if c.operation == operation)


def ensure_state_machine(session: boto3.Session, spec: EmrSpec, calls: list[ApiCall]) -> str:
    """Create the state machine, update it if it differs, or leave it; return the action taken."""
    from botocore.exceptions import ClientError

    sfn = client_for(session, "stepfunctions")
    create = _by_operation(calls, "CreateStateMachine")
    try:
        current = sfn.describe_state_machine(stateMachineArn=state_machine_arn(spec))
    except ClientError as exc:
        if not is_not_found(exc):
            raise api_error(exc, "DescribeStateMachine", "looking up the state machine") from exc
        send(session, create, "creating the state machine")
        return "created"
    desired = json.loads(create.params["definition"])
    if json.loads(current["definition"]) == desired and current.get("roleArn") == create.params["roleArn"]:
        return "unchanged"
    send(session, _by_operation(calls, "UpdateStateMachine"), "updating the state machine")
    return "updated"


def ensure_schedule_group(session: boto3.Session, spec: EmrSpec) -> None:
    """Create the schedule group when the spec names one that does not exist (``default`` always does)."""
    from botocore.exceptions import ClientError

    if spec.schedule.group == "default":
        return
    scheduler = client_for(session, "scheduler")
    try:
        scheduler.get_schedule_group(Name=spec.schedule.group)
    except ClientError as exc:
        if not is_not_found(exc):
            raise api_error(exc, "GetScheduleGroup", "looking up the schedule group") from exc
        send(
            session,
            ApiCall("scheduler", "CreateScheduleGroup", {"Name": spec.schedule.group}),
            "creating the schedule group",
        )


def schedule_differs(current: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """The keys of ``desired`` that the existing schedule does not match."""
    differs = [k for k in _COMPARED_SCHEDULE_KEYS if current.get(k) != desired.get(k)]
    target = current.get("Target") or {}
    differs += [f"Target.{k}" for k, v in desired["Target"].items() if target.get(k) != v]
    return differs


def ensure_schedule(session: boto3.Session, desired: dict[str, Any]) -> str:
    """Create the schedule ``desired`` names, update it if it differs, or leave it; return the action taken."""
    from botocore.exceptions import ClientError

    scheduler = client_for(session, "scheduler")
    name = desired["Name"]
    try:
        current = scheduler.get_schedule(Name=name, GroupName=desired["GroupName"])
    except ClientError as exc:
        if not is_not_found(exc):
            raise api_error(exc, "GetSchedule", f"looking up the schedule {name}") from exc
        send(session, ApiCall("scheduler", "CreateSchedule", desired), f"creating the schedule {name}")
        return "created"
    differs = schedule_differs(current, desired)
    if not differs:
        return "unchanged"
    log.info("schedule %s differs in %s; updating it", name, differs)
    send(session, ApiCall("scheduler", "UpdateSchedule", desired), f"updating the schedule {name}")
    return "updated"


def schedule(
    spec: EmrSpec,
    release: Release,
    *,
    session: boto3.Session | None,
    dry_run: bool = False,
    out: Callable[[str], None] = print,
) -> ScheduleResult | None:
    """Create or update the state machine and the schedule (or print the requests).

    Returns:
        What was done (``None`` with ``dry_run``).
    """
    calls = schedule_plan(spec, release)
    validate_calls(calls)
    if dry_run:
        print_plan(calls, out)
        return None
    assert session is not None, "schedule needs a boto3 session unless dry_run"
    require_no_placeholders(spec)
    run_preflight(session, spec, release, spec.steps, pipeline=True)
    sm_action = ensure_state_machine(session, spec, calls)
    ensure_schedule_group(session, spec)
    actions = [ensure_schedule(session, desired) for desired in schedule_requests(spec)]
    result = ScheduleResult(
        state_machine_arn(spec),
        sm_action,
        spec.schedule.name,
        actions[0],
        release.uri,
        spec.schedule.audit_name,
        actions[1] if len(actions) > 1 else "",
    )
    log.info("state machine %s, schedules %s (release %s)", sm_action, actions, release.release_id)
    out(json.dumps(result.to_json()))
    return result
