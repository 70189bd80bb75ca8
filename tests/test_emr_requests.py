"""The pure request builders, validated against botocore's own service models (no AWS, no moto).

Every request the EMR commands can send is built here for several spec variants and checked with
``botocore.validate.validate_parameters`` against the operation's input shape, exactly as a boto3
client would before sending it. The Step Functions definition is checked as a graph: every way out
after the cluster exists goes through a terminateCluster task.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from softlines_attr.emr import iam
from softlines_attr.emr.aws import validate_request
from softlines_attr.emr.cluster import REQUIRED_SPARK_KEYS, VENV_PYTHON
from softlines_attr.emr.release import Release
from softlines_attr.emr.requests import add_job_flow_steps_request, run_job_flow_request
from softlines_attr.emr.run import launch_plan, profile_conf, wait_plan
from softlines_attr.emr.schedule import schedule_plan
from softlines_attr.emr.spec import EmrSpec, NodeSpec, load_emr_spec
from softlines_attr.emr.stage import release_for
from softlines_attr.emr.steps import COMMAND_RUNNER
from softlines_attr.emr.upload import ReleaseFile, stage_plan
from softlines_attr.emr.workflow import (
    create_state_machine_request,
    schedule_request,
    state_machine_definition,
    update_state_machine_request,
)
from softlines_attr.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def spec() -> EmrSpec:
    return load_emr_spec()


@pytest.fixture(scope="module")
def release(spec: EmrSpec) -> Release:
    return release_for(spec, "0123456789abcdef")


@pytest.fixture(scope="module")
def profile(spec: EmrSpec) -> dict[str, str]:
    return profile_conf(spec)


def fleets_spec(spec: EmrSpec) -> EmrSpec:
    """The shipped spec as instance fleets: several GPU types, spot task nodes with on-demand fallback."""
    inst = spec.instances
    return dataclasses.replace(
        spec,
        instances=dataclasses.replace(
            inst,
            kind="fleets",
            core=dataclasses.replace(inst.core, instance_types=("g4dn.2xlarge", "g5.2xlarge")),
            task=NodeSpec(instance_types=("g5.2xlarge", "g4dn.4xlarge"), count=4, market="SPOT", ebs_gb=128),
        ),
        network=dataclasses.replace(spec.network, subnet_ids=("subnet-a", "subnet-b")),
    )


def variants(spec: EmrSpec) -> list[EmrSpec]:
    with_task = dataclasses.replace(
        spec,
        instances=dataclasses.replace(
            spec.instances, task=dataclasses.replace(spec.instances.task, count=3, bid_price="0.50")
        ),
    )
    with_extras = dataclasses.replace(
        with_task,
        pip_index_url="https://pypi.example.internal/simple",
        security_configuration="at-rest-encryption",
        roles=dataclasses.replace(spec.roles, autoscaling_role="EMR_AutoScaling_DefaultRole"),
        network=dataclasses.replace(spec.network, ec2_key_name="ops", additional_master_security_groups=("sg-1",)),
    )
    return [spec, with_task, with_extras, fleets_spec(spec)]


# --------------------------------------------------------------------------------------------
# botocore validation of every request
# --------------------------------------------------------------------------------------------


def test_validator_is_live(spec: EmrSpec, release: Release, profile: dict[str, str]) -> None:
    request = run_job_flow_request(spec, release, profile, transient=True)
    bad = json.loads(json.dumps(request))
    bad["Instances"]["InstanceGroups"][0]["InstanceCount"] = "one"
    del bad["Name"]
    with pytest.raises(ParamValidationError) as info:
        validate_request("emr", "RunJobFlow", bad)
    assert "InstanceCount" in str(info.value) and "Name" in str(info.value)


@pytest.mark.parametrize("transient", [True, False])
def test_every_launch_request_validates(spec: EmrSpec, release: Release, transient: bool) -> None:
    for variant in variants(spec):
        calls = launch_plan(variant, release, transient=transient)
        assert calls[-1].operation == "RunJobFlow"
        for call in calls:
            validate_request(call.service, call.operation, call.params)


def test_add_steps_and_schedule_and_stage_requests_validate(spec: EmrSpec, release: Release, tmp_path: Path) -> None:
    validate_request(
        "emr", "AddJobFlowSteps", add_job_flow_steps_request(spec, release, "j-1ABCDEFGHIJKL", list(spec.steps))
    )
    for variant in variants(spec):
        plan = schedule_plan(variant, release)
        assert [c.operation for c in plan if c.service in ("stepfunctions", "scheduler")] == [
            "DescribeStateMachine",
            "CreateStateMachine",
            "UpdateStateMachine",
            "GetSchedule",
            "CreateSchedule",
            "UpdateSchedule",
        ]
        for call in plan:
            validate_request(call.service, call.operation, call.params)
    flexible = dataclasses.replace(
        spec, schedule=dataclasses.replace(spec.schedule, flexible_window_minutes=15, enabled=False, group="ml")
    )
    validate_request("scheduler", "CreateSchedule", schedule_request(flexible))
    for call in schedule_plan(flexible, release):
        validate_request(call.service, call.operation, call.params)
    files = [
        ReleaseFile("jobs/score.py", "ab" * 32, 10, "text/x-python", data=b"x"),
        ReleaseFile("MANIFEST.json", "cd" * 32, 2, "application/json", data=b"{}"),
    ]
    for call in stage_plan(release, files):
        validate_request(call.service, call.operation, call.params)
    for call in wait_plan("j-1ABCDEFGHIJKL"):
        validate_request(call.service, call.operation, call.params)


def test_state_machine_task_parameters_validate_as_their_emr_apis(
    spec: EmrSpec, release: Release, profile: dict[str, str]
) -> None:
    """createCluster takes RunJobFlow's parameters, addStep AddJobFlowSteps', terminateCluster TerminateJobFlows'."""
    for variant in variants(spec):
        states = state_machine_definition(variant, release, profile)["States"]
        for name, state in states.items():
            resource = state.get("Resource", "")
            params = state.get("Parameters", {})
            if resource.endswith("createCluster.sync"):
                validate_request("emr", "RunJobFlow", params)
            elif resource.endswith("addStep.sync"):
                assert params["ClusterId.$"] == "$.cluster.ClusterId"
                validate_request("emr", "AddJobFlowSteps", {"JobFlowId": "j-X", "Steps": [params["Step"]]})
            elif resource.endswith("terminateCluster.sync"):
                assert params == {"ClusterId.$": "$.cluster.ClusterId"}
                validate_request("emr", "TerminateJobFlows", {"JobFlowIds": ["j-X"]})
            else:
                assert state["Type"] in ("Succeed", "Fail"), name


# --------------------------------------------------------------------------------------------
# What the cluster request says
# --------------------------------------------------------------------------------------------


def test_transient_cluster_terminates_on_failure_and_at_the_end(
    spec: EmrSpec, release: Release, profile: dict[str, str]
) -> None:
    request = run_job_flow_request(spec, release, profile, transient=True)
    assert request["Instances"]["KeepJobFlowAliveWhenNoSteps"] is False
    assert {s["ActionOnFailure"] for s in request["Steps"]} == {"TERMINATE_CLUSTER"}
    assert request["AutoTerminationPolicy"] == {"IdleTimeout": spec.idle_timeout_minutes * 60}
    kept = run_job_flow_request(spec, release, profile, transient=False)
    assert kept["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert {s["ActionOnFailure"] for s in kept["Steps"]} == {"CANCEL_AND_WAIT"}


def test_gpu_configuration_for_yarn_and_spark(spec: EmrSpec, release: Release, profile: dict[str, str]) -> None:
    configs = {
        c["Classification"]: c for c in run_job_flow_request(spec, release, profile, transient=True)["Configurations"]
    }
    yarn = configs["yarn-site"]["Properties"]
    assert yarn["yarn.resource-types"] == "yarn.io/gpu" and yarn["yarn.nodemanager.resource-plugins"] == "yarn.io/gpu"
    assert yarn["yarn.nodemanager.linux-container-executor.cgroups.mount-path"] == "/spark-rapids-cgroup"  # emr-7.x
    sub = {c["Classification"]: c["Properties"] for c in configs["container-executor"]["Configurations"]}
    assert sub["gpu"] == {"module.enabled": "true"} and sub["cgroups"]["root"] == "/spark-rapids-cgroup"
    assert configs["capacity-scheduler"]["Properties"]["yarn.scheduler.capacity.resource-calculator"].endswith(
        "DominantResourceCalculator"
    )
    sparkd = configs["spark-defaults"]["Properties"]
    for key in REQUIRED_SPARK_KEYS:
        assert key in sparkd
    assert sparkd["spark.executor.resource.gpu.discoveryScript"].endswith("getGpusResources.sh")
    assert sparkd["spark.python.worker.reuse"] == "true"
    assert sparkd["spark.pyspark.python"] == VENV_PYTHON
    assert all(isinstance(v, str) for v in sparkd.values())
    emr6 = dataclasses.replace(spec, release_label="emr-6.15.0")
    yarn6 = {
        c["Classification"]: c for c in run_job_flow_request(emr6, release, profile, transient=True)["Configurations"]
    }["yarn-site"]
    assert yarn6["Properties"]["yarn.nodemanager.linux-container-executor.cgroups.mount-path"] == "/sys/fs/cgroup"


def test_missing_gpu_setting_is_a_config_error(spec: EmrSpec, release: Release, profile: dict[str, str]) -> None:
    stripped = {k: v for k, v in profile.items() if k != "spark.task.resource.gpu.amount"}
    with pytest.raises(ConfigError, match=r"spark.task.resource.gpu.amount"):
        run_job_flow_request(spec, release, stripped, transient=True)


def test_steps_are_spark_submit_of_the_release(spec: EmrSpec, release: Release, profile: dict[str, str]) -> None:
    steps = run_job_flow_request(spec, release, profile, transient=True)["Steps"]
    assert [s["Name"] for s in steps] == ["build-labels", "shard-images", "score"]
    for step, spec_step in zip(steps, spec.steps):
        jar = step["HadoopJarStep"]
        assert jar["Jar"] == COMMAND_RUNNER
        args = jar["Args"]
        assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
        script = f"{release.uri}jobs/{spec_step.job}.py"
        assert script in args
        job_args = args[args.index(script) + 1 :]
        assert job_args[: len(spec_step.args)] == list(spec_step.args)
        assert job_args[-2:] == ["--spark-profile", "emr_gpu"]
        if spec_step.taxonomy:
            assert job_args[job_args.index("--taxonomy") + 1] == "taxonomy.toml"
            assert args[args.index("--files") + 1] == f"{release.uri}conf/taxonomy.toml"
    boot = run_job_flow_request(spec, release, profile, transient=True)["BootstrapActions"][0]["ScriptBootstrapAction"]
    assert boot == {"Path": f"{release.uri}emr/bootstrap/install_softlines_attr.sh", "Args": [release.uri]}


def test_fleets_request_spot_task_with_fallback(spec: EmrSpec, release: Release, profile: dict[str, str]) -> None:
    request = run_job_flow_request(fleets_spec(spec), release, profile, transient=True)
    fleets = {f["InstanceFleetType"]: f for f in request["Instances"]["InstanceFleets"]}
    assert request["Instances"]["Ec2SubnetIds"] == ["subnet-a", "subnet-b"]
    assert [c["InstanceType"] for c in fleets["CORE"]["InstanceTypeConfigs"]] == ["g4dn.2xlarge", "g5.2xlarge"]
    assert fleets["TASK"]["TargetSpotCapacity"] == 4
    assert fleets["TASK"]["LaunchSpecifications"]["SpotSpecification"]["TimeoutAction"] == "SWITCH_TO_ON_DEMAND"
    assert "InstanceGroups" not in request["Instances"]


def test_cluster_tags_carry_release_and_managed_policy_tag(
    spec: EmrSpec, release: Release, profile: dict[str, str]
) -> None:
    tags = {t["Key"]: t["Value"] for t in run_job_flow_request(spec, release, profile, transient=True)["Tags"]}
    assert tags["softlines-attr:release"] == release.release_id
    assert tags["for-use-with-amazon-emr-managed-policies"] == "true"
    assert tags["project"] == "softlines-attr"


# --------------------------------------------------------------------------------------------
# The state machine always terminates the cluster
# --------------------------------------------------------------------------------------------


def _paths(states: dict[str, Any], start: str) -> list[list[str]]:
    """Every path from ``start`` to a terminal state, each Task taking its success edge or any Catch."""
    out: list[list[str]] = []

    def walk(name: str, path: list[str]) -> None:
        path = path + [name]
        state = states[name]
        if state["Type"] in ("Succeed", "Fail") or state.get("End"):
            out.append(path)
            return
        edges = [state["Next"]] + [c["Next"] for c in state.get("Catch", [])]
        for nxt in dict.fromkeys(edges):
            assert nxt in states, f"{name} -> missing state {nxt}"
            walk(nxt, path)

    walk(start, [])
    return out


def test_every_way_out_after_cluster_creation_terminates_it(
    spec: EmrSpec, release: Release, profile: dict[str, str]
) -> None:
    definition = state_machine_definition(spec, release, profile)
    states = definition["States"]
    terminators = {n for n, s in states.items() if s.get("Resource", "").endswith("terminateCluster.sync")}
    assert terminators == {"TerminateCluster", "TerminateClusterAfterFailure"}
    paths = _paths(states, definition["StartAt"])
    assert len(paths) > len(spec.steps)
    for path in paths:
        created = len(path) > 1 and path[1] != "CreateClusterFailed"
        if created:
            assert terminators & set(path), f"path leaves the cluster running: {path}"
        end = states[path[-1]]["Type"]
        if end == "Succeed":
            assert "TerminateCluster" in path and all(
                n.startswith(("Create", "Step", "Terminate", "Succeeded")) for n in path
            )
    step_states = [s for s in states.values() if s.get("Resource", "").endswith("addStep.sync")]
    assert len(step_states) == len(spec.steps)
    for state in step_states:
        assert state["TimeoutSeconds"] == spec.schedule.step_timeout_minutes * 60
        assert (
            state["Catch"][0]["ErrorEquals"] == ["States.ALL"]
            and state["Catch"][0]["Next"] == "TerminateClusterAfterFailure"
        )
        assert state["Parameters"]["Step"]["ActionOnFailure"] == "CONTINUE"
    create = states["CreateCluster"]["Parameters"]
    assert create["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True and "Steps" not in create
    assert create["AutoTerminationPolicy"]["IdleTimeout"] > 0  # the backstop if the execution is stopped
    assert states["PipelineFailed"]["Type"] == "Fail"


def test_state_machine_requests(spec: EmrSpec, release: Release, profile: dict[str, str]) -> None:
    definition = state_machine_definition(spec, release, profile)
    create = create_state_machine_request(spec, definition)
    assert json.loads(create["definition"]) == definition
    assert create["roleArn"] == f"arn:aws:iam::{spec.account_id}:role/{spec.schedule.state_machine_role}"
    update = update_state_machine_request(spec, definition)
    assert update["stateMachineArn"].endswith(f":stateMachine:{spec.schedule.state_machine_name}")
    target = schedule_request(spec)["Target"]
    assert target["Arn"] == update["stateMachineArn"]
    assert "<aws.scheduler.scheduled-time>" in json.loads(target["Input"]).values()


# --------------------------------------------------------------------------------------------
# IAM documents and EMR assets
# --------------------------------------------------------------------------------------------


def test_iam_documents_are_in_sync_with_the_shipped_spec(spec: EmrSpec) -> None:
    docs = iam.documents(spec)
    for name, doc in docs.items():
        shipped = REPO / "emr" / "iam" / name
        assert shipped.is_file(), f"missing {shipped}; run softlines-attr emr iam --out emr/iam"
        assert json.loads(shipped.read_text()) == doc, f"{shipped} is stale; run softlines-attr emr iam --out emr/iam"


def _statements(doc: dict[str, Any]) -> list[dict[str, Any]]:
    policies = doc.get("Policies") or [doc]
    return [s for p in policies for s in p["PolicyDocument"]["Statement"]]


def test_iam_documents_are_least_privilege(spec: EmrSpec) -> None:
    docs = iam.documents(spec)
    for name, doc in docs.items():
        for st in _statements(doc):
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert not any(a == "*" or a.endswith(":*") for a in actions), (name, st)
            if st["Resource"] == "*":
                assert set(actions) <= {
                    "elasticmapreduce:RunJobFlow",
                    "elasticmapreduce:ListClusters",
                    "sts:GetCallerIdentity",
                }, (name, st)
            if "iam:PassRole" in actions:
                assert "iam:PassedToService" in st["Condition"]["StringEquals"], (name, st)
    instance = docs["emr-instance-role.json"]
    assert instance["ManagedPolicyArns"] == []
    writes = next(s for s in _statements(instance) if s["Sid"] == "WriteOutputs")["Resource"]
    assert writes == sorted(
        {f"arn:aws:s3:::change-me-softlines-attr/{p}*" for p in ("labels", "shards/top2000", "attributes")}
    )
    sched = docs["scheduler-role.json"]
    assert _statements(sched) == [
        {
            "Sid": "StartPipeline",
            "Effect": "Allow",
            "Action": "states:StartExecution",
            "Resource": "arn:aws:states:us-east-1:000000000000:stateMachine:softlines-attr-pipeline",
        }
    ]
    sfn = json.dumps(docs["state-machine-role.json"])
    assert "StepFunctionsGetEventForEMRAddJobFlowStepsRule" in sfn and "elasticmapreduce:TerminateJobFlows" in sfn


def test_bootstrap_and_discovery_scripts(tmp_path: Path) -> None:
    boot = REPO / "emr" / "bootstrap" / "install_softlines_attr.sh"
    disc = REPO / "emr" / "gpu" / "getGpusResources.sh"
    for script in (boot, disc):
        subprocess.run(["bash", "-n", str(script)], check=True)
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
    text = boot.read_text()
    assert "mxnet-cu112==${MXNET_VERSION}" in text and "MXNET_VERSION=1.9.1" in text
    assert "python3.11" in text and "sha256sum --quiet --check SHA256SUMS" in text
    # the discovery script prints Spark's ResourceInformation JSON for whatever nvidia-smi reports
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nvidia-smi").write_text("#!/bin/sh\necho 0\necho 1\n")
    (fake / "nvidia-smi").chmod(0o755)
    env = {"PATH": f"{fake}:/usr/bin:/bin"}
    got = subprocess.run(["bash", str(disc)], env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(got) == {"name": "gpu", "addresses": ["0", "1"]}
    if shutil.which("shellcheck"):
        subprocess.run(["shellcheck", str(boot), str(disc)], check=True)
