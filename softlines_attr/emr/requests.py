"""Pure request builders: the EMR requests (RunJobFlow, AddJobFlowSteps) as plain dicts, and the ARNs.

Nothing here or in the builders it assembles talks to AWS or reads files: every function takes the
spec (and the Spark profile's settings, the release) and returns the exact parameters a boto3 client
method takes. The tests validate every one of them against botocore's service model. The pieces:
:mod:`cluster` (nodes, bootstrap, EMR configurations, tags), :mod:`steps` (the spark-submit steps),
:mod:`workflow` (the Step Functions state machine and the EventBridge Scheduler schedule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from softlines_attr.emr.cluster import bootstrap_actions, cluster_tags, configurations, instances
from softlines_attr.emr.release import Release
from softlines_attr.emr.spec import EmrSpec, StepSpec
from softlines_attr.emr.steps import step_config
from softlines_attr.io.tables import new_run_id


def role_arn(spec: EmrSpec, role_name: str) -> str:
    """``arn:aws:iam::<account>:role/<name>``."""
    return f"arn:aws:iam::{spec.account_id}:role/{role_name}"


def state_machine_arn(spec: EmrSpec) -> str:
    """The ARN of the spec's state machine (``arn:aws:states:<region>:<account>:stateMachine:<name>``)."""
    return f"arn:aws:states:{spec.region}:{spec.account_id}:stateMachine:{spec.schedule.state_machine_name}"


def run_job_flow_request(
    spec: EmrSpec,
    release: Release,
    profile_conf: Mapping[str, str],
    *,
    transient: bool,
    steps: Sequence[StepSpec] | None = None,
    cpu_only: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The RunJobFlow request.

    Args:
        spec: The EMR spec.
        release: The staged release the cluster installs and runs.
        profile_conf: The Spark profile's settings (``conf/spark/<spark_profile>.toml``).
        transient: Terminate when the steps end (and on a failed step: ActionOnFailure=TERMINATE_CLUSTER);
            otherwise keep the cluster and cancel the remaining steps on a failure (CANCEL_AND_WAIT).
        steps: The steps to run; ``None`` for every step of the spec, ``[]`` for none.
        cpu_only: The master alone and no YARN GPU set-up (the audit schedule's cluster).
        run_id: The steps' ``--run-id`` (every step commits ``runs/<run_id>/``); default a new one.
    """
    steps = list(spec.steps) if steps is None else list(steps)
    action = "TERMINATE_CLUSTER" if transient else "CANCEL_AND_WAIT"
    request: dict[str, Any] = {
        "Name": spec.name,
        "LogUri": spec.log_uri,
        "ReleaseLabel": spec.release_label,
        "Applications": [{"Name": a} for a in spec.applications],
        "Instances": instances(spec, keep_alive=not transient, cpu_only=cpu_only),
        "BootstrapActions": bootstrap_actions(spec, release),
        "Configurations": configurations(spec, profile_conf, gpu=not cpu_only),
        "VisibleToAllUsers": True,
        "JobFlowRole": spec.roles.instance_profile,
        "ServiceRole": spec.roles.service_role,
        "Tags": cluster_tags(spec, release),
        "EbsRootVolumeSize": spec.ebs_root_volume_gb,
        "StepConcurrencyLevel": 1,
        "ScaleDownBehavior": "TERMINATE_AT_TASK_COMPLETION",
        "AutoTerminationPolicy": {"IdleTimeout": spec.idle_timeout_minutes * 60},
    }
    if steps:
        run_id = run_id or new_run_id()
        request["Steps"] = [step_config(spec, s, release, action, run_id) for s in steps]
    if spec.roles.autoscaling_role:
        request["AutoScalingRole"] = spec.roles.autoscaling_role
    if spec.security_configuration:
        request["SecurityConfiguration"] = spec.security_configuration
    return request


def add_job_flow_steps_request(
    spec: EmrSpec,
    release: Release,
    cluster_id: str,
    steps: Sequence[StepSpec],
    action_on_failure: str = "CANCEL_AND_WAIT",
    run_id: str | None = None,
) -> dict[str, Any]:
    """The AddJobFlowSteps request: on a failure, the later steps are cancelled (they depend on it).

    Every step gets ``--run-id`` ``run_id`` (default a new one), so the steps of one request commit one run.
    """
    run_id = run_id or new_run_id()
    return {
        "JobFlowId": cluster_id,
        "Steps": [step_config(spec, s, release, action_on_failure, run_id) for s in steps],
    }
