"""Pure request builders: EMR, Step Functions and EventBridge Scheduler requests as plain dicts.

Nothing here talks to AWS or reads files: every function takes the spec (and the Spark profile's
settings, the release) and returns the exact parameters a boto3 client method takes. The tests
validate every one of them against botocore's service model.

Design choices, in one place:

* **The wheel is installed by a bootstrap action**, not shipped with ``--py-files``: the package
  needs native dependencies (``mxnet-cu112`` on GPU nodes, numpy, pillow, pyarrow) that a zip on
  ``PYTHONPATH`` cannot carry, and its bundled ``conf/`` defaults live in the wheel's data files.
  Every node gets ``/opt/softlines-attr/venv`` and Spark's ``spark.pyspark.python`` points at it.
* **Steps run in cluster deploy mode** and reference the release by its S3 URI: the job file
  (``<release>/jobs/<job>.py``) and the conf/taxonomy TOMLs (shipped with ``--files`` into the
  driver's working directory, so ``--conf NAME.toml`` resolves there).
* **GPU scheduling** is turned on for YARN (resource plugin ``yarn.io/gpu``, LinuxContainerExecutor
  with cgroup device isolation, the DominantResourceCalculator) and for Spark (the profile's
  ``spark.executor.resource.gpu.*`` amounts and discovery script, ``spark.python.worker.reuse``,
  the Arrow batch size), all as EMR configurations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from softlines_attr.emr.spec import JOBS, EmrSpec, NodeSpec, StepSpec
from softlines_attr.emr.stage import Release
from softlines_attr.errors import ConfigError

BOOTSTRAP_SCRIPT = "emr/bootstrap/install_softlines_attr.sh"
PREFIX = "/opt/softlines-attr"
VENV_PYTHON = f"{PREFIX}/venv/bin/python"
LOCAL_RELEASE = f"{PREFIX}/release"
COMMAND_RUNNER = "command-runner.jar"
DOMINANT_RESOURCE_CALCULATOR = "org.apache.hadoop.yarn.util.resource.DominantResourceCalculator"
#: Spark settings the GPU jobs cannot run without; the profile (or spark_defaults) must define them.
REQUIRED_SPARK_KEYS: tuple[str, ...] = (
    "spark.executor.resource.gpu.amount",
    "spark.task.resource.gpu.amount",
    "spark.executor.resource.gpu.discoveryScript",
    "spark.python.worker.reuse",
    "spark.sql.execution.arrow.maxRecordsPerBatch",
)
#: Tag that AWS's managed EMR service policy (AmazonEMRServicePolicy_v2) requires on EMR's resources.
MANAGED_POLICY_TAG = "for-use-with-amazon-emr-managed-policies"
RELEASE_TAG = "softlines-attr:release"
PIPELINE_TAG = "softlines-attr:pipeline"


# --------------------------------------------------------------------------------------------
# ARNs
# --------------------------------------------------------------------------------------------


def role_arn(spec: EmrSpec, role_name: str) -> str:
    """``arn:aws:iam::<account>:role/<name>``."""
    return f"arn:aws:iam::{spec.account_id}:role/{role_name}"


def state_machine_arn(spec: EmrSpec) -> str:
    """The ARN of the spec's state machine (``arn:aws:states:<region>:<account>:stateMachine:<name>``)."""
    return f"arn:aws:states:{spec.region}:{spec.account_id}:stateMachine:{spec.schedule.state_machine_name}"


# --------------------------------------------------------------------------------------------
# Cluster configuration
# --------------------------------------------------------------------------------------------


def spark_defaults(spec: EmrSpec, profile_conf: Mapping[str, str]) -> dict[str, str]:
    """The ``spark-defaults`` classification: the profile's settings, the venv's Python, the spec's extras.

    Raises:
        ConfigError: when a GPU setting the jobs need is missing.
    """
    props: dict[str, str] = dict(profile_conf)
    props.update(
        {
            "spark.pyspark.python": VENV_PYTHON,
            "spark.pyspark.driver.python": VENV_PYTHON,
            "spark.yarn.appMasterEnv.PYSPARK_PYTHON": VENV_PYTHON,
            "spark.executorEnv.PYSPARK_PYTHON": VENV_PYTHON,
        }
    )
    props.update(spec.spark_defaults)
    missing = [k for k in REQUIRED_SPARK_KEYS if k not in props]
    if missing:
        raise ConfigError(
            f"{spec.source}: spark profile {spec.spark_profile!r} plus [spark_defaults] lack {missing}; "
            f"expected every one of {list(REQUIRED_SPARK_KEYS)} for GPU scheduling"
        )
    return dict(sorted(props.items()))


def cgroup_root(release_label: str) -> str:
    """Where YARN's cgroups live: EMR 7.x (cgroup v2 hosts) uses the v1 mount the bootstrap makes."""
    major = int(release_label.removeprefix("emr-").split(".")[0])
    return "/spark-rapids-cgroup" if major >= 7 else "/sys/fs/cgroup"


def configurations(spec: EmrSpec, profile_conf: Mapping[str, str]) -> list[dict[str, Any]]:
    """EMR configurations: Spark defaults and env, YARN GPU scheduling and isolation, the capacity scheduler."""
    root = cgroup_root(spec.release_label)
    return [
        {"Classification": "spark-defaults", "Properties": spark_defaults(spec, profile_conf)},
        {
            "Classification": "spark-env",
            "Properties": {},
            "Configurations": [
                {"Classification": "export", "Properties": {"PYSPARK_PYTHON": VENV_PYTHON, "PYSPARK_DRIVER_PYTHON": VENV_PYTHON}}
            ],
        },
        {
            "Classification": "yarn-site",
            "Properties": {
                "yarn.resource-types": "yarn.io/gpu",
                "yarn.nodemanager.resource-plugins": "yarn.io/gpu",
                "yarn.nodemanager.resource-plugins.gpu.allowed-gpu-devices": "auto",
                "yarn.nodemanager.resource-plugins.gpu.path-to-discovery-executables": "/usr/bin",
                "yarn.nodemanager.container-executor.class": "org.apache.hadoop.yarn.server.nodemanager.LinuxContainerExecutor",
                "yarn.nodemanager.linux-container-executor.cgroups.mount": "true",
                "yarn.nodemanager.linux-container-executor.cgroups.mount-path": root,
                "yarn.nodemanager.linux-container-executor.cgroups.hierarchy": "yarn",
            },
        },
        {
            "Classification": "container-executor",
            "Properties": {},
            "Configurations": [
                {"Classification": "gpu", "Properties": {"module.enabled": "true"}},
                {"Classification": "cgroups", "Properties": {"root": root, "yarn-hierarchy": "yarn"}},
            ],
        },
        {
            "Classification": "capacity-scheduler",
            "Properties": {"yarn.scheduler.capacity.resource-calculator": DOMINANT_RESOURCE_CALCULATOR},
        },
    ]


def bootstrap_actions(spec: EmrSpec, release: Release) -> list[dict[str, Any]]:
    """The one bootstrap action: install Python 3.11 and the release's wheel on every node."""
    args = [release.uri]
    if spec.pip_index_url:
        args += ["--index-url", spec.pip_index_url]
    return [{"Name": "install-softlines-attr", "ScriptBootstrapAction": {"Path": release.s3_uri(BOOTSTRAP_SCRIPT), "Args": args}}]


def ebs_configuration(node: NodeSpec) -> dict[str, Any] | None:
    """EBS volumes of one node type, or ``None`` for none."""
    if node.ebs_gb <= 0:
        return None
    return {
        "EbsBlockDeviceConfigs": [
            {"VolumeSpecification": {"VolumeType": node.ebs_volume_type, "SizeInGB": node.ebs_gb}, "VolumesPerInstance": node.ebs_volumes}
        ],
        "EbsOptimized": True,
    }


def _nodes(spec: EmrSpec) -> list[tuple[str, NodeSpec]]:
    nodes = [("MASTER", spec.instances.master), ("CORE", spec.instances.core)]
    if spec.instances.task is not None and spec.instances.task.count > 0:
        nodes.append(("TASK", spec.instances.task))
    return nodes


def instance_groups(spec: EmrSpec) -> list[dict[str, Any]]:
    """``Instances.InstanceGroups``: one type per node type; the task group only when its count > 0."""
    groups = []
    for role, node in _nodes(spec):
        group: dict[str, Any] = {
            "Name": role.lower(),
            "InstanceRole": role,
            "Market": node.market,
            "InstanceType": node.instance_types[0],
            "InstanceCount": node.count,
        }
        if node.market == "SPOT" and node.bid_price:
            group["BidPrice"] = node.bid_price
        ebs = ebs_configuration(node)
        if ebs:
            group["EbsConfiguration"] = ebs
        groups.append(group)
    return groups


def instance_fleets(spec: EmrSpec) -> list[dict[str, Any]]:
    """``Instances.InstanceFleets``: several types per node type (weight 1 each), spot with a fallback."""
    fleets = []
    for role, node in _nodes(spec):
        configs = []
        for itype in node.instance_types:
            cfg: dict[str, Any] = {"InstanceType": itype, "WeightedCapacity": 1}
            if node.market == "SPOT" and node.bid_price:
                cfg["BidPrice"] = node.bid_price
            ebs = ebs_configuration(node)
            if ebs:
                cfg["EbsConfiguration"] = ebs
            configs.append(cfg)
        fleet: dict[str, Any] = {"Name": role.lower(), "InstanceFleetType": role, "InstanceTypeConfigs": configs}
        if node.market == "SPOT":
            fleet["TargetSpotCapacity"] = node.count
            fleet["LaunchSpecifications"] = {
                "SpotSpecification": {
                    "TimeoutDurationMinutes": node.spot_timeout_minutes,
                    "TimeoutAction": node.spot_timeout_action,
                    "AllocationStrategy": node.spot_allocation_strategy,
                }
            }
        else:
            fleet["TargetOnDemandCapacity"] = node.count
            fleet["LaunchSpecifications"] = {"OnDemandSpecification": {"AllocationStrategy": "lowest-price"}}
        fleets.append(fleet)
    return fleets


def instances(spec: EmrSpec, *, keep_alive: bool) -> dict[str, Any]:
    """``Instances``: groups or fleets, network, and whether the cluster outlives its steps."""
    net = spec.network
    out: dict[str, Any] = {"KeepJobFlowAliveWhenNoSteps": keep_alive, "TerminationProtected": False}
    if spec.instances.kind == "groups":
        out["InstanceGroups"] = instance_groups(spec)
        out["Ec2SubnetId"] = net.subnet_ids[0]
    else:
        out["InstanceFleets"] = instance_fleets(spec)
        out["Ec2SubnetIds"] = list(net.subnet_ids)
    optional = {
        "Ec2KeyName": net.ec2_key_name,
        "EmrManagedMasterSecurityGroup": net.emr_managed_master_security_group,
        "EmrManagedSlaveSecurityGroup": net.emr_managed_slave_security_group,
        "ServiceAccessSecurityGroup": net.service_access_security_group,
    }
    out.update({k: v for k, v in optional.items() if v})
    if net.additional_master_security_groups:
        out["AdditionalMasterSecurityGroups"] = list(net.additional_master_security_groups)
    if net.additional_slave_security_groups:
        out["AdditionalSlaveSecurityGroups"] = list(net.additional_slave_security_groups)
    return out


def cluster_tags(spec: EmrSpec, release: Release) -> list[dict[str, str]]:
    """The spec's tags plus the release, the pipeline name and the managed-policy tag."""
    tags = dict(spec.tags)
    tags.update({RELEASE_TAG: release.release_id, PIPELINE_TAG: spec.name, MANAGED_POLICY_TAG: "true"})
    return [{"Key": k, "Value": v} for k, v in tags.items()]


# --------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------


def _shipped_file(spec: EmrSpec, release: Release, value: str) -> tuple[str, str]:
    """(what the job is told, what spark-submit ships) for a step's ``conf``/``taxonomy`` value."""
    if spec.deploy_mode == "client":
        if value.startswith("s3://"):
            raise ConfigError(f"{spec.source}: deploy_mode 'client' reads conf files from the master's disk; expected a release path (conf/...), found {value!r}")
        return f"{LOCAL_RELEASE}/{value}", ""
    uri = value if value.startswith("s3://") else release.s3_uri(value)
    return PurePosixPath(value).name, uri


def spark_submit_args(spec: EmrSpec, step: StepSpec, release: Release) -> list[str]:
    """The ``command-runner.jar`` arguments: ``spark-submit [options] <release>/jobs/<job>.py <job args>``."""
    job = JOBS[step.job]
    job_flags: list[str] = []
    shipped: list[str] = []
    for flag, value in (("--conf", step.conf), ("--taxonomy", step.taxonomy)):
        if value:
            told, uri = _shipped_file(spec, release, value)
            job_flags += [flag, told]
            if uri:
                shipped.append(uri)
    names = [PurePosixPath(u).name for u in shipped]
    if len(set(names)) != len(names):
        raise ConfigError(f"{spec.source}: step {step.name!r}: expected conf and taxonomy files with different names, found {names}")
    args = ["spark-submit", "--deploy-mode", spec.deploy_mode, "--conf", f"spark.pyspark.python={VENV_PYTHON}"]
    if shipped:
        args += ["--files", ",".join(shipped)]
    args += list(step.spark_submit_args)
    args.append(release.s3_uri(job.script))
    args += list(step.args)
    args += job_flags
    args += ["--spark-profile", spec.spark_profile]
    return args


def step_config(spec: EmrSpec, step: StepSpec, release: Release, action_on_failure: str) -> dict[str, Any]:
    """One EMR ``StepConfig``: a command-runner.jar spark-submit of the step's job."""
    return {
        "Name": step.name,
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {"Jar": COMMAND_RUNNER, "Args": spark_submit_args(spec, step, release)},
    }


def select_steps(spec: EmrSpec, names: Sequence[str] | None) -> list[StepSpec]:
    """The spec's steps named in ``names`` (in spec order), or all of them."""
    if not names:
        return list(spec.steps)
    for name in names:
        spec.step(name)  # raises ConfigError naming the choices
    return [s for s in spec.steps if s.name in set(names)]


# --------------------------------------------------------------------------------------------
# EMR requests
# --------------------------------------------------------------------------------------------


def run_job_flow_request(
    spec: EmrSpec,
    release: Release,
    profile_conf: Mapping[str, str],
    *,
    transient: bool,
    steps: Sequence[StepSpec] | None = None,
) -> dict[str, Any]:
    """The RunJobFlow request.

    Args:
        spec: The EMR spec.
        release: The staged release the cluster installs and runs.
        profile_conf: The Spark profile's settings (``conf/spark/<spark_profile>.toml``).
        transient: Terminate when the steps end (and on a failed step: ActionOnFailure=TERMINATE_CLUSTER);
            otherwise keep the cluster and cancel the remaining steps on a failure (CANCEL_AND_WAIT).
        steps: The steps to run; ``None`` for every step of the spec, ``[]`` for none.
    """
    steps = list(spec.steps) if steps is None else list(steps)
    action = "TERMINATE_CLUSTER" if transient else "CANCEL_AND_WAIT"
    request: dict[str, Any] = {
        "Name": spec.name,
        "LogUri": spec.log_uri,
        "ReleaseLabel": spec.release_label,
        "Applications": [{"Name": a} for a in spec.applications],
        "Instances": instances(spec, keep_alive=not transient),
        "BootstrapActions": bootstrap_actions(spec, release),
        "Configurations": configurations(spec, profile_conf),
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
        request["Steps"] = [step_config(spec, s, release, action) for s in steps]
    if spec.roles.autoscaling_role:
        request["AutoScalingRole"] = spec.roles.autoscaling_role
    if spec.security_configuration:
        request["SecurityConfiguration"] = spec.security_configuration
    return request


def add_job_flow_steps_request(
    spec: EmrSpec, release: Release, cluster_id: str, steps: Sequence[StepSpec], action_on_failure: str = "CANCEL_AND_WAIT"
) -> dict[str, Any]:
    """The AddJobFlowSteps request: on a failure, the later steps are cancelled (they depend on it)."""
    return {"JobFlowId": cluster_id, "Steps": [step_config(spec, s, release, action_on_failure) for s in steps]}


# --------------------------------------------------------------------------------------------
# Step Functions
# --------------------------------------------------------------------------------------------

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
        nxt = step_state_name(index + 1, spec.steps[index + 1]) if index + 1 < len(spec.steps) else TERMINATE_AFTER_SUCCESS
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
        "Cause": f"the steps succeeded but the cluster could not be terminated; it ends after {spec.idle_timeout_minutes} idle minutes",
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


# --------------------------------------------------------------------------------------------
# EventBridge Scheduler
# --------------------------------------------------------------------------------------------


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
