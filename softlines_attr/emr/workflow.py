"""Step Functions and EventBridge Scheduler requests: the pipeline's state machine and its schedule.

The state machine creates a GPU cluster, runs each step with a time limit and always terminates the
cluster; the schedule starts it on the spec's cron. ``emr schedule`` (:mod:`schedule`) sends these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from softlines_attr.emr.cluster import PIPELINE_TAG
from softlines_attr.emr.release import Release
from softlines_attr.emr.requests import role_arn, run_job_flow_request, state_machine_arn
from softlines_attr.emr.spec import EmrSpec, StepSpec
from softlines_attr.emr.steps import step_config

CLUSTER_ID_PATH = "$.cluster.ClusterId"
TERMINATE_AFTER_SUCCESS = "TerminateCluster"
TERMINATE_AFTER_FAILURE = "TerminateClusterAfterFailure"
CREATE_CLUSTER = "CreateCluster"


def step_state_name(index: int, step: StepSpec) -> str:
    """The state of step ``index`` (``Step1-build-labels``; ASL names stay under 80 characters)."""
    return f"Step{index + 1}-{step.name}"[:80]


def _catch_all(next_state: str) -> list[dict[str, Any]]:
    return [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": next_state}]


def state_machine_definition(spec: EmrSpec, release: Release, profile_conf: Mapping[str, str]) -> dict[str, Any]:
    """The Amazon States Language definition: create the cluster, run each step, always terminate.

    * ``CreateCluster`` (``createCluster.sync``) starts a cluster that stays up between steps
      (KeepJobFlowAliveWhenNoSteps) with the idle auto-termination policy as a backstop, and retries on
      EMR errors such as missing GPU capacity. Its failure ends the run: a cluster that failed to
      start is terminated by EMR, and one that comes up late ends on the idle timeout.
    * Each step (``addStep.sync``, ActionOnFailure CONTINUE: the state machine owns the lifecycle)
      has a time limit and catches every error into ``TerminateClusterAfterFailure``.
    * Both ways out go through ``terminateCluster.sync``; the failure path then fails the execution
      with the step's error and cause.
    """
    sched = spec.schedule
    create_params = run_job_flow_request(spec, release, profile_conf, transient=False, steps=[])
    states: dict[str, Any] = {
        CREATE_CLUSTER: {
            "Type": "Task",
            "Resource": "arn:aws:states:::elasticmapreduce:createCluster.sync",
            "Parameters": create_params,
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
            "Next": step_state_name(0, spec.steps[0]),
        }
    }
    for index, step in enumerate(spec.steps):
        nxt = (
            step_state_name(index + 1, spec.steps[index + 1])
            if index + 1 < len(spec.steps)
            else TERMINATE_AFTER_SUCCESS
        )
        states[step_state_name(index, step)] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::elasticmapreduce:addStep.sync",
            "Parameters": {"ClusterId.$": CLUSTER_ID_PATH, "Step": step_config(spec, step, release, "CONTINUE")},
            "ResultPath": None,
            "TimeoutSeconds": (step.timeout_minutes or sched.step_timeout_minutes) * 60,
            "Catch": _catch_all(TERMINATE_AFTER_FAILURE),
            "Next": nxt,
        }
    terminate_retry = [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 30, "MaxAttempts": 5, "BackoffRate": 2.0}]
    states[TERMINATE_AFTER_SUCCESS] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::elasticmapreduce:terminateCluster.sync",
        "Parameters": {"ClusterId.$": CLUSTER_ID_PATH},
        "ResultPath": None,
        "Retry": terminate_retry,
        "Catch": _catch_all("TerminateFailed"),
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
        f"{len(spec.steps)} steps, always terminate it",
        "StartAt": CREATE_CLUSTER,
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


def schedule_request(spec: EmrSpec) -> dict[str, Any]:
    """The CreateSchedule / UpdateSchedule request (the two take the same parameters).

    The target is the state machine (StartExecution); its input carries the scheduled time and the
    scheduler's execution id, which show up in each execution's history.
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
    }
    return {
        "Name": sched.name,
        "GroupName": sched.group,
        "ScheduleExpression": sched.expression,
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
