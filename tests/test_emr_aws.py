"""stage / launch / add-steps / wait / schedule against moto's server over HTTP on loopback.

Every client the code under test creates talks to moto's server (``AWS_ENDPOINT_URL`` points all
services at it: S3, EMR, IAM, STS, Step Functions, EventBridge Scheduler). Moto creates clusters and
steps but never runs them, so the tests play EMR's part by setting step states in moto's backend
(the server runs in this process) and by putting a step's stderr.gz where EMR would upload it.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest

from softlines_attr import cli
from softlines_attr.emr.errors import EmrError, EmrPreflightError, EmrStepFailedError
from softlines_attr.emr.release import MANIFEST, Release, collect_sources
from softlines_attr.emr.requests import run_job_flow_request
from softlines_attr.emr.run import add_steps, launch, profile_conf, wait
from softlines_attr.emr.schedule import schedule
from softlines_attr.emr.spec import EmrSpec, load_emr_spec
from softlines_attr.emr.stage import local_release_id, release_for, stage
from softlines_attr.emr.wheel import build_wheel

REPO = Path(__file__).resolve().parent.parent
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
JOB_STUB = '"""Stub written by tests/test_emr_aws.py into a copy of the source tree."""\n'


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the release's source files, with stub job files where the jobs are not written yet."""
    root = tmp_path_factory.mktemp("src")
    for f in collect_sources(REPO):
        target = root / f.rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f.path, target)
    for job in ("build_labels", "shard_images", "score", "train_dist", "refine", "evaluate", "promote", "audit"):
        path = root / "jobs" / f"{job}.py"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(JOB_STUB)
    return root


@pytest.fixture(scope="module")
def wheel(source_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real wheel, built once from the copied tree (pip wheel, no network)."""
    return build_wheel(source_tree, tmp_path_factory.mktemp("dist"))


@pytest.fixture()
def session(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> boto3.Session:
    """A session whose every client goes to moto's server (S3 through conftest's s3_endpoint)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.Session(region_name=REGION)


def _ensure_roles(session: boto3.Session, spec: EmrSpec) -> None:
    iam = session.client("iam")
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    for name in (
        spec.roles.service_role,
        spec.roles.instance_role_name,
        spec.schedule.state_machine_role,
        spec.schedule.scheduler_role,
    ):
        try:
            iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)
        except iam.exceptions.EntityAlreadyExistsException:
            pass
    try:
        iam.create_instance_profile(InstanceProfileName=spec.roles.instance_profile)
        iam.add_role_to_instance_profile(
            InstanceProfileName=spec.roles.instance_profile, RoleName=spec.roles.instance_role_name
        )
    except iam.exceptions.EntityAlreadyExistsException:
        pass


def write_spec(tmp_path: Path, bucket: str, name: str, **replace: str) -> Path:
    """conf/emr.toml with the placeholders filled for moto (unique bucket and cluster name per test)."""
    text = (REPO / "conf" / "emr.toml").read_text()
    text = (
        text.replace("change-me-softlines-attr", bucket)
        .replace("change-me-images", f"{bucket}-images")
        .replace("subnet-change-me", "subnet-0abc1234def567890")
        .replace('"change-me"', '"tests"')
        .replace('account_id = "000000000000"', f'account_id = "{ACCOUNT}"')
        .replace('name = "softlines-attr"  ', f'name = "{name}"  ')
        .replace("poll_seconds = 30", "poll_seconds = 1")
    )
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "emr.toml"
    path.write_text(text)
    return path


@dataclasses.dataclass
class World:
    session: boto3.Session
    spec: EmrSpec
    spec_path: Path
    bucket: str
    root: Path
    wheel: Path

    def stage(self) -> Release:
        return stage(self.spec, root=self.root, session=self.session, wheel=self.wheel).release

    def release(self) -> Release:
        return release_for(self.spec, local_release_id(self.root))


@pytest.fixture()
def world(session: boto3.Session, tmp_path: Path, source_tree: Path, wheel: Path) -> World:
    """A bucket, the roles and a spec naming them, unique to this test."""
    bucket = f"sa-emr-{uuid.uuid4().hex[:10]}"
    session.client("s3").create_bucket(Bucket=bucket)
    path = write_spec(tmp_path, bucket, f"sa-test-{uuid.uuid4().hex[:8]}")
    spec = load_emr_spec(path)
    _ensure_roles(session, spec)
    return World(session, spec, path, bucket, source_tree, wheel)


def emr_cluster(cluster_id: str) -> Any:
    """Moto's model of a cluster (the server runs in this process)."""
    from moto.emr.models import emr_backends

    return emr_backends[ACCOUNT][REGION].clusters[cluster_id]


def set_step_states(cluster_id: str, *states: str, reason: str | None = None) -> list[str]:
    """Play EMR: give the cluster's steps (oldest first) these states; return their ids."""
    steps = emr_cluster(cluster_id).steps
    for step, state in zip(steps, states):
        step.state = state
        if reason and state == "FAILED":
            step.last_state_change_reason = reason
    return [s.id for s in steps]


def _objects(session: boto3.Session, bucket: str, prefix: str) -> dict[str, bytes]:
    s3 = session.client("s3")
    keys = [
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for o in p.get("Contents", [])
    ]
    return {k[len(prefix) :]: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


# --------------------------------------------------------------------------------------------
# stage
# --------------------------------------------------------------------------------------------


def test_stage_uploads_a_complete_content_addressed_release(world: World) -> None:
    result = stage(world.spec, root=world.root, session=world.session, wheel=world.wheel)
    release = result.release
    assert release.release_id == local_release_id(world.root) and not result.already_staged
    objects = _objects(world.session, world.bucket, release.key(""))
    manifest = json.loads(objects[MANIFEST])
    assert manifest["release_id"] == release.release_id
    assert {f["path"] for f in manifest["files"]} | {MANIFEST} == set(objects)
    assert {
        "jobs/build_labels.py",
        "jobs/score.py",
        "conf/emr.toml",
        "emr/bootstrap/install_softlines_attr.sh",
        "SHA256SUMS",
    } <= set(objects)
    wheel_key = manifest["wheel"]
    assert wheel_key.startswith("dist/softlines_attr-") and wheel_key.endswith(".whl")
    import hashlib
    import zipfile

    sums = dict(reversed(line.split("  ", 1)) for line in objects["SHA256SUMS"].decode().splitlines())
    for rel, digest in sums.items():
        assert hashlib.sha256(objects[rel]).hexdigest() == digest, rel
    names = zipfile.ZipFile(io.BytesIO(objects[wheel_key])).namelist()
    assert "softlines_attr/emr/spec.py" in names
    assert any(n.endswith("data/share/softlines-attr/conf/spark/emr_gpu.toml") for n in names)
    reqs = objects["requirements-emr.txt"].decode().split()
    assert "mxnet==1.9.1" in reqs and not any(r.startswith("pyspark") for r in reqs)
    again = stage(world.spec, root=world.root, session=world.session, wheel=world.wheel)
    assert again.already_staged and again.uploaded == 0


def test_stage_into_a_missing_bucket_is_a_clear_error(world: World, tmp_path: Path) -> None:
    spec = load_emr_spec(write_spec(tmp_path, "sa-emr-no-such-bucket", "sa-missing"))
    with pytest.raises(EmrPreflightError, match=r"bucket 'sa-emr-no-such-bucket' \(release_prefix\) does not exist"):
        stage(spec, root=world.root, session=world.session, wheel=world.wheel)


# --------------------------------------------------------------------------------------------
# launch / add-steps
# --------------------------------------------------------------------------------------------


def test_launch_creates_the_transient_gpu_cluster(world: World) -> None:
    release = world.stage()
    printed: list[str] = []
    cluster_id = launch(world.spec, release, session=world.session, out=printed.append)
    assert cluster_id and json.loads(printed[0])["ClusterId"] == cluster_id
    emr = world.session.client("emr")
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert cluster["Name"] == world.spec.name and cluster["AutoTerminate"] is True
    tags = {t["Key"]: t["Value"] for t in cluster["Tags"]}
    assert tags["softlines-attr:release"] == release.release_id
    assert {c["Classification"] for c in cluster["Configurations"]} >= {
        "spark-defaults",
        "yarn-site",
        "container-executor",
        "capacity-scheduler",
    }
    steps = list(reversed(emr.list_steps(ClusterId=cluster_id)["Steps"]))
    assert [s["Name"] for s in steps] == [s.name for s in world.spec.steps]
    assert all(s["ActionOnFailure"] == "TERMINATE_CLUSTER" for s in steps)
    score = next(s for s in steps if s["Name"] == "score")["Config"]["Args"]
    assert score[0] == "spark-submit" and f"{release.uri}jobs/score.py" in score
    groups = {g["InstanceGroupType"]: g for g in emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]}
    assert groups["CORE"]["InstanceType"] == "g4dn.2xlarge" and groups["CORE"]["RequestedInstanceCount"] == 2
    boot = emr.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"][0]
    assert boot["ScriptPath"] == f"{release.uri}emr/bootstrap/install_softlines_attr.sh"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'service_role = "softlines-attr-emr-service"',
            'service_role = "sa-no-such-role"',
            r"IAM role 'sa-no-such-role' \(roles.service_role.*does not exist",
        ),
        (
            'instance_profile = "softlines-attr-emr-instance"',
            'instance_profile = "sa-no-such-profile"',
            r"IAM instance-profile 'sa-no-such-profile'.*does not exist",
        ),
        (
            'log_uri = "s3://BUCKET/emr/logs/"',
            'log_uri = "s3://sa-no-such-log-bucket/logs/"',
            r"bucket 'sa-no-such-log-bucket' \(log_uri\) does not exist",
        ),
        (
            f'account_id = "{ACCOUNT}"',
            'account_id = "210987654321"',
            r"account_id is 210987654321, but the credentials .* account 123456789012",
        ),
    ],
)
def test_launch_refuses_missing_roles_buckets_and_wrong_account(
    world: World, tmp_path: Path, old: str, new: str, message: str
) -> None:
    world.stage()
    path = write_spec(tmp_path, world.bucket, world.spec.name, **{old.replace("BUCKET", world.bucket): new})
    spec = load_emr_spec(path)
    with pytest.raises(EmrPreflightError, match=message):
        launch(spec, world.release(), session=world.session)
    names = [c["Name"] for c in world.session.client("emr").list_clusters()["Clusters"]]
    assert world.spec.name not in names


def test_launch_of_an_unstaged_release_is_refused(world: World) -> None:
    with pytest.raises(EmrPreflightError, match=r"release [0-9a-f]{16} is not staged.*emr stage"):
        launch(world.spec, world.release(), session=world.session)


def test_add_steps_uses_the_clusters_own_release(world: World) -> None:
    release = world.stage()
    cluster_id = launch(
        world.spec, release, session=world.session, transient=False, step_names=["build-labels"], out=lambda _: None
    )
    assert cluster_id
    printed: list[str] = []
    step_ids = add_steps(
        world.spec, cluster_id, session=world.session, step_names=["shard-base", "score"], out=printed.append
    )
    assert len(step_ids) == 2 and json.loads(printed[0])["release"] == release.uri
    steps = list(reversed(world.session.client("emr").list_steps(ClusterId=cluster_id)["Steps"]))
    assert [s["Name"] for s in steps] == ["build-labels", "shard-base", "score"]
    assert [s["ActionOnFailure"] for s in steps] == ["CANCEL_AND_WAIT"] * 3
    world.session.client("emr").terminate_job_flows(JobFlowIds=[cluster_id])
    with pytest.raises(EmrError, match=r"is TERMINATED; expected one of"):
        add_steps(world.spec, cluster_id, session=world.session)


# --------------------------------------------------------------------------------------------
# wait
# --------------------------------------------------------------------------------------------


THREE = ["build-labels", "shard-base", "score"]


def test_wait_follows_steps_until_they_complete(world: World) -> None:
    cluster_id = launch(world.spec, world.stage(), session=world.session, step_names=THREE, out=lambda _: None)
    assert cluster_id
    set_step_states(cluster_id, "COMPLETED", "COMPLETED", "RUNNING")
    timer = threading.Timer(1.5, set_step_states, args=(cluster_id, "COMPLETED", "COMPLETED", "COMPLETED"))
    timer.start()
    try:
        printed: list[str] = []
        result = wait(world.spec, cluster_id, session=world.session, out=printed.append)
    finally:
        timer.cancel()
    assert result is not None
    assert [s.state for s in result.steps] == ["COMPLETED"] * 3
    assert json.loads(printed[0])["Steps"][2]["Name"] == "score"


def test_failed_step_terminates_the_transient_cluster_and_shows_stderr(world: World) -> None:
    cluster_id = launch(world.spec, world.stage(), session=world.session, step_names=THREE, out=lambda _: None)
    assert cluster_id
    ids = set_step_states(cluster_id, "COMPLETED", "FAILED", "CANCELLED", reason="Step failed with exitCode 1")
    stderr = "\n".join(f"line {i}" for i in range(200)) + "\nmxnet.base.MXNetError: out of memory\n"
    world.session.client("s3").put_object(
        Bucket=world.bucket, Key=f"emr/logs/{cluster_id}/steps/{ids[1]}/stderr.gz", Body=gzip.compress(stderr.encode())
    )
    with pytest.raises(EmrStepFailedError) as info:
        wait(world.spec, cluster_id, session=world.session)
    message = str(info.value)
    assert "'shard-base'" in message and "ended FAILED: Step failed with exitCode 1" in message
    assert "the transient cluster was terminated" in message
    assert f"last 60 lines of s3://{world.bucket}/emr/logs/{cluster_id}/steps/{ids[1]}/stderr.gz" in message
    assert message.rstrip().endswith("mxnet.base.MXNetError: out of memory") and "line 139" not in message
    state = world.session.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]
    assert state == "TERMINATED"


def test_failed_step_on_a_kept_cluster_leaves_it_running(world: World) -> None:
    cluster_id = launch(world.spec, world.stage(), session=world.session, transient=False, out=lambda _: None)
    assert cluster_id
    set_step_states(cluster_id, "FAILED", "CANCELLED", "CANCELLED")
    with pytest.raises(EmrStepFailedError, match=r"(?s)left running.*no stderr in S3 yet"):
        wait(world.spec, cluster_id, session=world.session)
    state = world.session.client("emr").describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]["State"]
    assert state not in ("TERMINATING", "TERMINATED")


# --------------------------------------------------------------------------------------------
# schedule
# --------------------------------------------------------------------------------------------


def _count_schedules(session: boto3.Session, name: str) -> int:
    return sum(1 for s in session.client("scheduler").list_schedules()["Schedules"] if s["Name"] == name)


def _count_machines(session: boto3.Session, name: str) -> int:
    return sum(1 for m in session.client("stepfunctions").list_state_machines()["stateMachines"] if m["name"] == name)


def test_schedule_is_created_once_and_updated_in_place(world: World) -> None:
    unique = world.spec.name
    spec = dataclasses.replace(
        world.spec,
        schedule=dataclasses.replace(
            world.spec.schedule, name=f"{unique}-weekly", state_machine_name=f"{unique}-pipeline"
        ),
    )
    release = world.stage()
    first = schedule(spec, release, session=world.session, out=lambda _: None)
    assert first is not None and (first.state_machine, first.schedule) == ("created", "created")
    again = schedule(spec, release, session=world.session, out=lambda _: None)
    assert again is not None and (again.state_machine, again.schedule) == ("unchanged", "unchanged")
    changed = dataclasses.replace(
        spec, schedule=dataclasses.replace(spec.schedule, expression="cron(30 1 * * ? *)", step_timeout_minutes=90)
    )
    third = schedule(changed, release, session=world.session, out=lambda _: None)
    assert third is not None and (third.state_machine, third.schedule) == ("updated", "updated")
    assert _count_schedules(world.session, spec.schedule.name) == 1
    assert _count_machines(world.session, spec.schedule.state_machine_name) == 1
    got = world.session.client("scheduler").get_schedule(Name=spec.schedule.name)
    assert got["ScheduleExpression"] == "cron(30 1 * * ? *)"
    assert got["Target"]["Arn"] == third.state_machine_arn
    definition = json.loads(
        world.session.client("stepfunctions").describe_state_machine(stateMachineArn=third.state_machine_arn)[
            "definition"
        ]
    )
    assert definition["States"]["Step1-build-labels"]["TimeoutSeconds"] == 90 * 60
    assert release.release_id in definition["Comment"]


def test_schedule_with_a_missing_scheduler_role_is_refused(world: World) -> None:
    spec = dataclasses.replace(
        world.spec, schedule=dataclasses.replace(world.spec.schedule, scheduler_role="sa-no-such-scheduler-role")
    )
    with pytest.raises(EmrPreflightError, match=r"IAM role 'sa-no-such-scheduler-role' \(schedule.scheduler_role"):
        schedule(spec, world.stage(), session=world.session)


# --------------------------------------------------------------------------------------------
# The CLI: --dry-run calls nothing; errors exit 2
# --------------------------------------------------------------------------------------------


def test_dry_run_prints_the_requests_and_calls_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("--dry-run created an AWS client")

    monkeypatch.setattr(botocore.session.Session, "create_client", refuse)
    monkeypatch.setattr("softlines_attr.emr.stage.build_wheel", lambda root, out: world.wheel)
    conf = str(world.spec_path)
    rid = local_release_id(world.root)
    runs = {
        "stage": ["--source", str(world.root)],
        "launch": ["--source", str(world.root)],
        "add-steps": ["--cluster-id", "j-1ABCDEFGHIJKL", "--release", rid],
        "wait": ["--cluster-id", "j-1ABCDEFGHIJKL"],
        "schedule": ["--source", str(world.root)],
    }
    plans = {}
    for action, extra in runs.items():
        assert cli.main(["emr", action, "--conf", conf, "--dry-run", *extra]) == 0, action
        plans[action] = json.loads(capsys.readouterr().out)
    assert plans["stage"][-1]["params"]["Key"].endswith(f"{rid}/{MANIFEST}")
    assert all(c["operation"] != "PutObject" or c["params"]["Body"].startswith("<") for c in plans["stage"])
    run_job_flow = next(c for c in plans["launch"] if c["operation"] == "RunJobFlow")["params"]
    first = run_job_flow["Steps"][0]["HadoopJarStep"]["Args"]
    run_id = first[first.index("--run-id") + 1]  # one per launch
    expected = run_job_flow_request(
        world.spec, release_for(world.spec, rid), profile_conf(world.spec), transient=True, run_id=run_id
    )
    assert run_job_flow == json.loads(json.dumps(expected))
    assert [c["operation"] for c in plans["add-steps"]] == ["DescribeCluster", "AddJobFlowSteps"]
    assert {c["operation"] for c in plans["schedule"]} >= {"CreateStateMachine", "CreateSchedule", "UpdateSchedule"}
    assert plans["wait"][0]["operation"] == "DescribeCluster"


def test_cli_runs_and_maps_errors_to_exit_2(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("softlines_attr.emr.stage.build_wheel", lambda root, out: world.wheel)  # built once per module
    conf = str(world.spec_path)
    assert cli.main(["emr", "stage", "--conf", conf, "--source", str(world.root)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out.strip().splitlines()[-1])["release_id"] == local_release_id(world.root)
    three = [a for name in THREE for a in ("--step", name)]
    assert cli.main(["emr", "launch", "--conf", conf, "--source", str(world.root), *three]) == 0
    cluster_id = json.loads(capsys.readouterr().out)["ClusterId"]
    set_step_states(cluster_id, "COMPLETED", "COMPLETED", "COMPLETED")
    assert cli.main(["emr", "wait", "--conf", conf, "--cluster-id", cluster_id]) == 0
    assert [s["State"] for s in json.loads(capsys.readouterr().out)["Steps"]] == ["COMPLETED"] * 3
    bad = write_spec(
        tmp_path,
        world.bucket,
        world.spec.name,
        **{'service_role = "softlines-attr-emr-service"': 'service_role = "sa-absent-role"'},
    )
    assert cli.main(["emr", "launch", "--conf", str(bad), "--source", str(world.root)]) == 2
    assert "IAM role 'sa-absent-role'" in capsys.readouterr().err
    assert cli.main(["emr", "launch", "--conf", str(REPO / "conf" / "emr.toml"), "--source", str(world.root)]) == 2
    assert "still hold the example values" in capsys.readouterr().err
    assert cli.main(["emr", "iam", "--conf", conf, "--out", str(tmp_path / "iam")]) == 0
    assert (
        json.loads((tmp_path / "iam" / "scheduler-role.json").read_text())["RoleName"]
        == world.spec.schedule.scheduler_role
    )
