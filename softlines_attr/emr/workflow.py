"""Step Functions and EventBridge Scheduler requests: the pipeline's state machine and its schedule.

The state machine creates a GPU cluster, runs each step with a time limit and always terminates the
cluster; the schedule starts it on the spec's cron. ``emr schedule`` (:mod:`schedule`) sends these.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from softlines_attr.emr.cluster import PIPELINE_TAG
from softlines_attr.emr.release import Release
from softlines_attr.emr.requests import role_arn, run_job_flow_request, state_machine_arn
from softlines_attr.emr.spec import EmrSpec, StepSpec, parse_s3_uri
from softlines_attr.emr.steps import step_config
from softlines_attr.emr.steptypes import step_type, validate_step_args, written_uri

#: Stands for the execution's run id while the step's arguments are built (then ``$.run_id``).
RUN_ID_TOKEN = "<execution-name>"

CLUSTER_ID_PATH = "$.cluster.ClusterId"
RUN_ID_PATH = "$.run_id"
TERMINATE_AFTER_SUCCESS = "TerminateCluster"
TERMINATE_AFTER_FAILURE = "TerminateClusterAfterFailure"
CREATE_CLUSTER = "CreateCluster"
CREATE_AUDIT_CLUSTER = "CreateAuditCluster"
START = "Start"
WHICH = "WhichSchedule"
REPORT = "Report"
GET_OBJECT = "arn:aws:states:::aws-sdk:s3:getObject"
#: The execution input's key that selects the audit schedule's branch (``{"run": "audit"}``).
RUN_KEY = "run"


def step_state_name(index: int, step: StepSpec) -> str:
    """The state of step ``index`` (``Step1-build-labels``; ASL names stay under 80 characters)."""
    return f"Step{index + 1}-{step.name}"[:80]


def summary_state_name(index: int, step: StepSpec) -> str:
    """The state reading step ``index``'s summary from S3."""
    return f"Summary{index + 1}-{step.name}"[:80]


def summary_key(step: StepSpec) -> str:
    """The step's key under ``$.summaries`` (a JSONPath-safe name: letters, digits, ``_``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", step.name)


def intrinsic_literal(text: str, *, placeholders: bool = False) -> str:
    """``text`` as a quoted string argument of an intrinsic function (``'``, ``{``, ``}``, ``\\`` escaped).

    With ``placeholders``, each ``{}`` stays a ``States.Format`` placeholder.
    """
    parts = text.split("{}") if placeholders else [text]
    return "'" + "{}".join(re.sub(r"([\\'{}])", r"\\\1", p) for p in parts) + "'"


def _arg_item(arg: str, token: str) -> str:
    """One element of :func:`args_intrinsic`: a literal, the run id, or ``States.Format`` of a value holding it."""
    if token not in arg:
        return intrinsic_literal(arg)
    if arg == token:
        return RUN_ID_PATH
    template = intrinsic_literal(arg.replace(token, "{}"), placeholders=True)
    return f"States.Format({template}, {', '.join([RUN_ID_PATH] * arg.count(token))})"


def args_intrinsic(args: Sequence[str], token: str) -> str:
    """``States.Array(...)`` of ``args`` with ``token`` (wherever it is) replaced by the execution's run id."""
    return f"States.Array({', '.join(_arg_item(a, token) for a in args)})"


def _catch_all(next_state: str) -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": next_state}]


def step_task(spec: EmrSpec, step: StepSpec, release: Release, next_state: str) -> dict[str, Any]:
    """One step as an ``addStep.sync`` task: the execution's run id in its args, a time limit, retries, a catch.

    ``Args.$`` is ``States.Array(...)`` of the spark-submit arguments with ``--run-id`` set to the
    execution's name, so every step of one execution commits ``runs/<execution name>/``.
    """
    stype = step_type(step.type)
    config = step_config(spec, step, release, "CONTINUE", run_id=RUN_ID_TOKEN)
    jar = dict(config["HadoopJarStep"])
    args = jar.pop("Args")
    if any(RUN_ID_TOKEN in a for a in args):
        jar["Args.$"] = args_intrinsic(args, RUN_ID_TOKEN)
    else:  # no run id anywhere in the step's arguments: plain args
        jar["Args"] = args
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::elasticmapreduce:addStep.sync",
        "Parameters": {"ClusterId.$": CLUSTER_ID_PATH, "Step": {**config, "HadoopJarStep": jar}},
        "ResultPath": None,
        "TimeoutSeconds": (step.timeout_minutes or spec.schedule.step_timeout_minutes) * 60,
        "Catch": _catch_all(TERMINATE_AFTER_FAILURE),
        "Next": next_state,
    }
    if stype.retries:
        # a failed EMR step only (not a timeout: a hung step retried would hang twice); a failed run never
        # committed, so the retry writes the same runs/<run_id>/ afresh
        retry = {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 60, "BackoffRate": 2.0}
        state["Retry"] = [{**retry, "MaxAttempts": stype.retries}]
    return state


def summary_task(step: StepSpec, next_state: str) -> dict[str, Any] | None:
    """An S3 GetObject of the step's summary into ``$.summaries.<step>``, or ``None`` when the type has none."""
    stype = step_type(step.type)
    uri = written_uri(stype, validate_step_args(stype, step.args, step=step.name))
    if not stype.summary or uri is None or not uri.startswith("s3://"):
        return None
    bucket, prefix = parse_s3_uri(uri)
    template = "/".join(p for p in (prefix.rstrip("/"), stype.summary.replace("{run_id}", "{}")) if p)
    literal = intrinsic_literal(template, placeholders=True)
    return {
        "Type": "Task",
        "Resource": GET_OBJECT,
        "Parameters": {"Bucket": bucket, "Key.$": f"States.Format({literal}, {RUN_ID_PATH})"},
        "ResultSelector": {"summary.$": "States.StringToJson($.Body)"},
        "ResultPath": f"$.summaries.{summary_key(step)}",
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 3, "BackoffRate": 2.0}],
        "Catch": _catch_all(TERMINATE_AFTER_FAILURE),
        "Next": next_state,
    }


def _create_cluster(spec: EmrSpec, params: dict[str, Any], first: str) -> dict[str, Any]:
    sched = spec.schedule
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::elasticmapreduce:createCluster.sync",
        "Parameters": params,
        "ResultSelector": {"ClusterId.$": "$.ClusterId"},
        "ResultPath": "$.cluster",
        "TimeoutSeconds": sched.create_cluster_timeout_minutes * 60,
        "Retry": [
            {
                "ErrorEquals": ["EMR.AmazonElasticMapReduceException", "States.TaskFailed"],
                "IntervalSeconds": 300,
                "MaxAttempts": sched.create_cluster_retries,
                "BackoffRate": 2.0,
            }
        ],
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "CreateClusterFailed"}],
        "Next": first,
    }


def _chain(spec: EmrSpec, release: Release, steps: Sequence[StepSpec], offset: int) -> dict[str, Any]:
    """The states of ``steps`` in order (each step, then its summary), the last one going to the terminate."""
    states: dict[str, Any] = {}
    for i, step in enumerate(steps):
        index = offset + i
        after = step_state_name(index + 1, steps[i + 1]) if i + 1 < len(steps) else TERMINATE_AFTER_SUCCESS
        summary = summary_task(step, after)
        states[step_state_name(index, step)] = step_task(
            spec, step, release, summary_state_name(index, step) if summary else after
        )
        if summary:
            states[summary_state_name(index, step)] = summary
    return states


def state_machine_definition(spec: EmrSpec, release: Release, profile_conf: Mapping[str, str]) -> dict[str, Any]:
    """The Amazon States Language definition: create the cluster, run each step, always terminate.

    * ``Start`` keeps the execution's name as the run id (every step commits ``runs/<run_id>/``) and
      ``WhichSchedule`` picks the branch: the pipeline (default) or, for ``{"run": "audit"}`` (the audit
      schedule's input), the audit steps on a CPU-only cluster (the master alone).
    * ``CreateCluster`` (``createCluster.sync``) starts a cluster that stays up between steps
      (KeepJobFlowAliveWhenNoSteps) with the idle auto-termination policy as a backstop, and retries on
      EMR errors such as missing GPU capacity. Its failure ends the run: a cluster that failed to
      start is terminated by EMR, and one that comes up late ends on the idle timeout.
    * Each step (``addStep.sync``, ActionOnFailure CONTINUE: the state machine owns the lifecycle)
      has a time limit, retries where its type says (:attr:`StepType.retries`), and catches every error
      into ``TerminateClusterAfterFailure``; then an S3 GetObject reads its summary into
      ``$.summaries.<step>`` (rows in / out / rejected, the gate's decision).
    * Both ways out go through ``terminateCluster.sync``; success ends in ``Report`` (the run id and
      every step's summary: the execution's output), failure fails the execution with the step's error.
    """
    pipeline = spec.steps_of("pipeline")
    audit = spec.steps_of("audit")
    create_params = run_job_flow_request(spec, release, profile_conf, transient=False, steps=[])
    states: dict[str, Any] = {
        START: {
            "Type": "Pass",
            "Parameters": {"run_id.$": "$$.Execution.Name", "input.$": "$", "summaries": {}},
            "Next": WHICH if audit else CREATE_CLUSTER,
        }
    }
    if audit:
        states[WHICH] = {
            "Type": "Choice",
            "Choices": [
                {
                    "And": [
                        {"Variable": f"$.input.{RUN_KEY}", "IsPresent": True},
                        {"Variable": f"$.input.{RUN_KEY}", "StringEquals": "audit"},
                    ],
                    "Next": CREATE_AUDIT_CLUSTER,
                }
            ],
            "Default": CREATE_CLUSTER,
        }
    states[CREATE_CLUSTER] = _create_cluster(spec, create_params, step_state_name(0, pipeline[0]))
    states.update(_chain(spec, release, pipeline, 0))
    if audit:
        audit_params = run_job_flow_request(spec, release, profile_conf, transient=False, steps=[], cpu_only=True)
        states[CREATE_AUDIT_CLUSTER] = _create_cluster(spec, audit_params, step_state_name(len(pipeline), audit[0]))
        states.update(_chain(spec, release, audit, len(pipeline)))
    terminate_retry = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30, "MaxAttempts": 5, "BackoffRate": 2.0}]
    states[TERMINATE_AFTER_SUCCESS] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::elasticmapreduce:terminateCluster.sync",
        "Parameters": {"ClusterId.$": CLUSTER_ID_PATH},
        "ResultPath": None,
        "Retry": terminate_retry,
        "Catch": _catch_all("TerminateFailed"),
        "Next": REPORT,
    }
    states[REPORT] = {
        "Type": "Pass",
        "Parameters": {"run_id.$": RUN_ID_PATH, "cluster_id.$": CLUSTER_ID_PATH, "summaries.$": "$.summaries"},
        "Next": "Succeeded",
    }
    states[TERMINATE_AFTER_FAILURE] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::elasticmapreduce:terminateCluster.sync",
        "Parameters": {"ClusterId.$": CLUSTER_ID_PATH},
        "ResultPath": None,
        "Retry": terminate_retry,
        "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.terminate_error", "Next": "PipelineFailed"}],
        "Next": "PipelineFailed",
    }
    states["PipelineFailed"] = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    states["CreateClusterFailed"] = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    states["TerminateFailed"] = {
        "Type": "Fail",
        "Error": "TerminateClusterFailed",
        "Cause": "the steps succeeded but the cluster could not be terminated; "
        f"it ends after {spec.idle_timeout_minutes} idle minutes",
    }
    states["Succeeded"] = {"Type": "Succeed"}
    return {
        "Comment": f"softlines-attr pipeline {spec.name!r}, release {release.release_id}: create a GPU cluster, run "
        f"{len(pipeline)} steps (or the {len(audit)} audit steps on a CPU cluster), always terminate it",
        "StartAt": START,
        "States": states,
    }


def definition_json(definition: Mapping[str, Any]) -> str:
    """The definition as the string Step Functions stores (stable key order, for comparisons)."""
    return json.dumps(definition, indent=2, sort_keys=True)


def create_state_machine_request(spec: EmrSpec, definition: Mapping[str, Any]) -> dict[str, Any]:
    """The CreateStateMachine request (a STANDARD workflow: runs take hours)."""
    return {
        "name": spec.schedule.state_machine_name,
        "definition": definition_json(definition),
        "roleArn": role_arn(spec, spec.schedule.state_machine_role),
        "type": "STANDARD",
        "tags": [{"key": k, "value": v} for k, v in {**spec.tags, PIPELINE_TAG: spec.name}.items()],
    }


def update_state_machine_request(spec: EmrSpec, definition: Mapping[str, Any]) -> dict[str, Any]:
    """The UpdateStateMachine request for the existing machine of the same name."""
    return {
        "stateMachineArn": state_machine_arn(spec),
        "definition": definition_json(definition),
        "roleArn": role_arn(spec, spec.schedule.state_machine_role),
    }


def schedule_request(spec: EmrSpec, *, audit: bool = False) -> dict[str, Any]:
    """The CreateSchedule / UpdateSchedule request (the two take the same parameters).

    The target is the state machine (StartExecution); its input carries the scheduled time and the
    scheduler's execution id, which show up in each execution's history, and which branch to run:
    ``{"run": "pipeline"}``, or with ``audit`` the audit schedule's ``{"run": "audit"}``.
    """
    sched = spec.schedule
    window: dict[str, Any] = (
        {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": sched.flexible_window_minutes}
        if sched.flexible_window_minutes > 0
        else {"Mode": "OFF"}
    )
    execution_input = {
        "scheduled_time": "<aws.scheduler.scheduled-time>",
        "scheduler_execution_id": "<aws.scheduler.execution-id>",
        "pipeline": spec.name,
        RUN_KEY: "audit" if audit else "pipeline",
    }
    return {
        "Name": sched.audit_name if audit else sched.name,
        "GroupName": sched.group,
        "ScheduleExpression": sched.audit_expression if audit else sched.expression,
        "ScheduleExpressionTimezone": sched.timezone,
        "Description": sched.description,
        "State": "ENABLED" if sched.enabled else "DISABLED",
        "FlexibleTimeWindow": window,
        "Target": {
            "Arn": state_machine_arn(spec),
            "RoleArn": role_arn(spec, sched.scheduler_role),
            "Input": json.dumps(execution_input, sort_keys=True),
            "RetryPolicy": {
                "MaximumEventAgeInSeconds": sched.max_event_age_seconds,
                "MaximumRetryAttempts": sched.max_retry_attempts,
            },
        },
        "ActionAfterCompletion": "NONE",
    }
