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
from softlines_attr.emr.steps import COMMAND_RUNNER, spark_submit_args
from softlines_attr.emr.steptypes import step_type
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
            *(["GetSchedule", "CreateSchedule", "UpdateSchedule"] * 2),  # the pipeline's and the audit's
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


def _intrinsic_args(text: str, run_id: str) -> list[str]:
    """Evaluate the ``States.Array(...)`` the state machine builds (literals, ``$.run_id``, ``States.Format``)."""
    pos = 0

    def expect(token: str) -> None:
        nonlocal pos
        assert text.startswith(token, pos), (token, text[pos : pos + 40])
        pos += len(token)

    def literal() -> str:
        nonlocal pos
        expect("'")
        out = []
        while text[pos] != "'":
            if text[pos] == "\\":
                pos += 1
            out.append(text[pos])
            pos += 1
        pos += 1
        return "".join(out)

    def item() -> str:
        nonlocal pos
        if text.startswith("'", pos):
            return literal()
        if text.startswith("$.run_id", pos):
            pos += len("$.run_id")
            return run_id
        expect("States.Format(")
        template = literal()
        values = []
        while text.startswith(", ", pos):
            pos += 2
            values.append(item())
        expect(")")
        assert template.count("{}") == len(values)
        return template.replace("{}", "%s") % tuple(values)

    expect("States.Array(")
    args = [item()]
    while text.startswith(", ", pos):
        pos += 2
        args.append(item())
    expect(")")
    assert pos == len(text)
    return args


def test_state_machine_task_parameters_validate_as_their_apis(
    spec: EmrSpec, release: Release, profile: dict[str, str]
) -> None:
    """createCluster takes RunJobFlow's parameters, addStep AddJobFlowSteps' (its intrinsic Args evaluated to the
    step's arguments with the execution's run id), terminateCluster TerminateJobFlows', getObject GetObject's."""
    awkward = dataclasses.replace(
        spec.steps[0], spark_submit_args=("--conf", "spark.app.name=it's {x} \\ {}"), args=(*spec.steps[0].args,)
    )
    for variant in [*variants(spec), dataclasses.replace(spec, steps=(awkward, *spec.steps[1:]))]:
        by_name = {s.name: s for s in variant.steps}
        states = state_machine_definition(variant, release, profile)["States"]
        for name, state in states.items():
            resource = state.get("Resource", "")
            params = state.get("Parameters", {})
            if resource.endswith("createCluster.sync"):
                validate_request("emr", "RunJobFlow", params)
            elif resource.endswith("addStep.sync"):
                assert params["ClusterId.$"] == "$.cluster.ClusterId"
                step = dict(params["Step"])
                jar = dict(step["HadoopJarStep"])
                if "Args.$" in jar:
                    jar["Args"] = _intrinsic_args(jar.pop("Args.$"), "exec-42")
                expected = spark_submit_args(variant, by_name[step["Name"]], release, run_id="exec-42")
                assert jar["Args"] == expected
                validate_request(
                    "emr", "AddJobFlowSteps", {"JobFlowId": "j-X", "Steps": [{**step, "HadoopJarStep": jar}]}
                )
            elif resource.endswith("terminateCluster.sync"):
                assert params == {"ClusterId.$": "$.cluster.ClusterId"}
                validate_request("emr", "TerminateJobFlows", {"JobFlowIds": ["j-X"]})
            elif resource.endswith("s3:getObject"):
                key = _intrinsic_args(f"States.Array({params['Key.$']})", "exec-42")[0]
                validate_request("s3", "GetObject", {"Bucket": params["Bucket"], "Key": key})
                assert "exec-42" in key
            else:
                assert state["Type"] in ("Succeed", "Fail", "Pass", "Choice"), name


def test_step_summaries_are_read_from_each_steps_committed_run(
    spec: EmrSpec, release: Release, profile: dict[str, str]
) -> None:
    states = state_machine_definition(spec, release, profile)["States"]
    keys = {
        n: _intrinsic_args(f"States.Array({s['Parameters']['Key.$']})", "R")[0]
        for n, s in states.items()
        if s.get("Resource", "").endswith("s3:getObject")
    }
    assert keys == {
        "Summary1-build-labels": "labels/runs/R/_summary.json",
        "Summary2-shard-base": "shards/base-top2000/runs/R/_summary.json",
        "Summary3-shard-multi": "shards/multi/runs/R/_summary.json",
        "Summary5-refine": "models/candidate/runs/R/_summary.json",
        "Summary6-evaluate": "models/evaluated/runs/R/_summary.json",
        "Summary7-promote": "models/registry/decisions/R/decision.json",
        "Summary8-score": "attributes/runs/R/_summary.json",
        "Summary9-audit": "audit/runs/R/_summary.json",
    }
    assert states["Summary7-promote"]["ResultPath"] == "$.summaries.promote"
    assert states["Report"]["Parameters"]["summaries.$"] == "$.summaries"
    assert states["Start"]["Parameters"]["run_id.$"] == "$$.Execution.Name"
    # every step but distributed training (no versioned output) gets the run id
    steps = {n: s for n, s in states.items() if s.get("Resource", "").endswith("addStep.sync")}
    for name, state in steps.items():
        jar = state["Parameters"]["Step"]["HadoopJarStep"]
        args = _intrinsic_args(jar["Args.$"], "R")
        if name == "Step4-train-base":
            assert "--run-id" not in args and "s3://change-me-softlines-attr/models/base/R/" in args
        else:
            assert args[args.index("--run-id") + 1] == "R"


def test_retries_only_failed_steps_never_timeouts(spec: EmrSpec, release: Release, profile: dict[str, str]) -> None:
    states = state_machine_definition(spec, release, profile)["States"]
    steps = [s for s in states.values() if s.get("Resource", "").endswith("addStep.sync")]
    assert len(steps) == len(spec.steps)
    for state in steps:
        assert state["Retry"] == [
            {"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 60, "BackoffRate": 2.0, "MaxAttempts": 1}
        ]


def test_audit_branch_runs_on_a_master_only_cpu_cluster(
    spec: EmrSpec, release: Release, profile: dict[str, str]
) -> None:
    states = state_machine_definition(spec, release, profile)["States"]
    which = states["WhichSchedule"]
    assert which["Choices"][0]["Next"] == "CreateAuditCluster" and which["Default"] == "CreateCluster"
    audit = states["CreateAuditCluster"]["Parameters"]
    assert [g["InstanceRole"] for g in audit["Instances"]["InstanceGroups"]] == ["MASTER"]
    assert "yarn-site" not in {c["Classification"] for c in audit["Configurations"]}
    pipeline = states["CreateCluster"]["Parameters"]
    assert [g["InstanceRole"] for g in pipeline["Instances"]["InstanceGroups"]] == ["MASTER", "CORE"]
    assert states["CreateAuditCluster"]["Next"] == "Step9-audit"
    audit_input = json.loads(schedule_request(spec, audit=True)["Target"]["Input"])
    assert audit_input["run"] == "audit" and json.loads(schedule_request(spec)["Target"]["Input"])["run"] == "pipeline"
    assert schedule_request(spec, audit=True)["ScheduleExpression"] == spec.schedule.audit_expression


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


def test_steps_are_spark_submit_of_the_release_placed_by_type(
    spec: EmrSpec, release: Release, profile: dict[str, str]
) -> None:
    steps = run_job_flow_request(spec, release, profile, transient=True, run_id="R1")["Steps"]
    assert [s["Name"] for s in steps] == [s.name for s in spec.steps]
    placed: dict[str, str] = {}
    for step, spec_step in zip(steps, spec.steps):
        jar = step["HadoopJarStep"]
        assert jar["Jar"] == COMMAND_RUNNER
        args = jar["Args"]
        stype = step_type(spec_step.type)
        client = args[:3] == ["spark-submit", "--deploy-mode", "client"]
        script = f"/opt/softlines-attr/release/{stype.script}" if client else f"{release.uri}{stype.script}"
        assert script in args
        submit, job_args = args[: args.index(script)], args[args.index(script) + 1 :]
        assert job_args[: len(spec_step.args)] == [a.replace("{run_id}", "R1") for a in spec_step.args]
        placed[spec_step.name] = "cpu" if client else "gpu"
        if client:  # the master: local[*], no GPU asked for
            assert submit[submit.index("--master") + 1] == "local[*]"
            assert "spark.task.resource.gpu.amount=0" in submit
        if "spark.driver.resource.gpu.amount=1" in submit:
            placed[spec_step.name] = "gpu_driver"
            assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
        if "--num-executors" in submit:
            placed[spec_step.name] = "gpu_barrier"
            assert submit[submit.index("--num-executors") + 1] == "2"  # = --num-workers
            assert "spark.dynamicAllocation.enabled=false" in submit
        if "--spark-profile" in job_args:
            assert job_args[job_args.index("--spark-profile") + 1] == ("emr_cpu" if client else "emr_gpu")
        if spec_step.taxonomy:
            told = job_args[job_args.index("--taxonomy") + 1]
            if client:
                assert told == "/opt/softlines-attr/release/conf/taxonomy.toml"
            else:
                assert told == "taxonomy.toml"
                assert submit[submit.index("--files") + 1] == f"{release.uri}conf/taxonomy.toml"
    assert placed == {
        "build-labels": "cpu",
        "shard-base": "gpu",
        "shard-multi": "gpu",
        "train-base": "gpu_barrier",
        "refine": "gpu_driver",
        "evaluate": "gpu_driver",
        "promote": "cpu",
        "score": "gpu",
        "audit": "cpu",
    }
    boot = run_job_flow_request(spec, release, profile, transient=True)["BootstrapActions"][0]["ScriptBootstrapAction"]
    assert boot == {
        "Path": f"{release.uri}emr/bootstrap/install_softlines_attr.sh",
        # train-base reads /mnt/s3/<bucket>/<prefix>/: that prefix alone is mounted on every node
        "Args": [release.uri, "--mount-s3", "change-me-softlines-attr/shards/base-top2000/"],
    }


def test_launch_gives_every_step_one_run_id(spec: EmrSpec, release: Release, profile: dict[str, str]) -> None:
    steps = run_job_flow_request(spec, release, profile, transient=True)["Steps"]
    ids = {
        a["HadoopJarStep"]["Args"][a["HadoopJarStep"]["Args"].index("--run-id") + 1]
        for a in steps
        if "--run-id" in a["HadoopJarStep"]["Args"]
    }
    assert len(ids) == 1
    (run_id,) = ids
    train = next(s for s in steps if s["Name"] == "train-base")["HadoopJarStep"]["Args"]
    assert f"s3://change-me-softlines-attr/models/base/{run_id}/" in train


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
        edges = [state["Next"]] if "Next" in state else []
        edges += [c["Next"] for c in state.get("Catch", []) + state.get("Choices", [])]
        edges += [state["Default"]] if "Default" in state else []
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
    creates = {"CreateCluster", "CreateAuditCluster"}
    for path in paths:
        made = [i for i, n in enumerate(path) if n in creates]
        created = bool(made) and path[made[0] + 1] != "CreateClusterFailed"
        if created:
            assert terminators & set(path[made[0] :]), f"path leaves the cluster running: {path}"
        end = states[path[-1]]["Type"]
        if end == "Succeed":
            assert path[-3:] == ["TerminateCluster", "Report", "Succeeded"], path
    step_states = [s for s in states.values() if s.get("Resource", "").endswith("addStep.sync")]
    assert len(step_states) == len(spec.steps)
    for state in step_states:
        assert state["TimeoutSeconds"] in (spec.schedule.step_timeout_minutes * 60, 2880 * 60)
        assert (
            state["Catch"][0]["ErrorEquals"] == ["States.ALL"]
            and state["Catch"][0]["Next"] == "TerminateClusterAfterFailure"
        )
        assert state["Parameters"]["Step"]["ActionOnFailure"] == "CONTINUE"
    for name in creates:
        create = states[name]["Parameters"]
        assert create["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True and "Steps" not in create
        assert create["AutoTerminationPolicy"]["IdleTimeout"] > 0  # the backstop if the execution is stopped
    assert states["PipelineFailed"]["Type"] == "Fail"
    succeeded = [p for p in paths if states[p[-1]]["Type"] == "Succeed"]
    assert {p[2] for p in succeeded} == creates  # Start -> WhichSchedule -> one of the two clusters


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
    written = (
        "labels",
        "shards/base-top2000",
        "shards/multi",
        "models/base",  # train-base's --out .../models/base/{run_id}/: every run's folder under it
        "models/candidate",
        "models/evaluated",
        "models/registry",  # promote writes its registry (the step type's written option, --models)
        "attributes",
        "audit",
    )
    assert writes == sorted(f"arn:aws:s3:::change-me-softlines-attr/{p}*" for p in written)
    reads = next(s for s in _statements(instance) if s["Sid"] == "ReadInputs")["Resource"]
    assert "arn:aws:s3:::change-me-softlines-attr/shards/base-top2000*" in reads  # the Mountpoint path of train-base
    assert "arn:aws:s3:::change-me-softlines-attr/tags/latest*" in reads
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
