"""Least-privilege IAM role documents, rendered from the EMR spec (pure functions).

Each document has the shape of a CloudFormation ``AWS::IAM::Role``'s properties (``RoleName``,
``AssumeRolePolicyDocument``, ``ManagedPolicyArns``, ``Policies``), so it can be pasted into a template
or applied with ``aws iam create-role`` / ``put-role-policy``. ``emr/iam/*.json`` are these documents
rendered from the shipped ``conf/emr.toml``; ``softlines-attr emr iam --conf FILE --out DIR`` renders
them for your spec (your buckets, prefixes, account, region and role names).

Scope of each role:

* **EMR service role**: AWS's managed ``AmazonEMRServicePolicy_v2``, which already limits EMR's EC2
  actions to resources tagged ``for-use-with-amazon-emr-managed-policies=true`` (the launcher tags the
  cluster; tag your subnet and security groups), plus ``iam:PassRole`` of the instance role only.
* **Instance role** (the nodes): read the release, read the steps' inputs, write the steps'
  ``--out`` prefixes, write the logs. No managed policy (``AmazonElasticMapReduceforEC2Role`` is
  deprecated and grants ``s3:*``).
* **State machine role**: create, drive and terminate EMR clusters, pass the two cluster roles,
  manage the EventBridge rules Step Functions' ``.sync`` EMR integrations use, and read the steps'
  summaries (``s3:GetObject`` under the prefixes the steps write).
* **Scheduler role**: ``states:StartExecution`` of the one state machine.
* **Operator policy**: what the person or CI job running ``softlines-attr emr ...`` needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from softlines_attr.emr.requests import role_arn, state_machine_arn
from softlines_attr.emr.spec import EmrSpec, parse_s3_uri
from softlines_attr.emr.steptypes import step_reads_writes, step_type, validate_step_args

VERSION = "2012-10-17"
EMR_SERVICE_POLICY_V2 = "arn:aws:iam::aws:policy/service-role/AmazonEMRServicePolicy_v2"
SFN_EMR_RULES = (
    "StepFunctionsGetEventForEMRRunJobFlowRule",
    "StepFunctionsGetEventForEMRAddJobFlowStepsRule",
    "StepFunctionsGetEventForEMRTerminateJobFlowsRule",
)


def _trust(service: str, condition: dict[str, Any]) -> dict[str, Any]:
    return {
        "Version": VERSION,
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole", "Condition": condition}
        ],
    }


def _policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": [s for s in statements if s]}


def _object_arn(uri: str) -> str:
    bucket, key = parse_s3_uri(uri)
    return f"arn:aws:s3:::{bucket}/{key.rstrip('/')}*" if key else f"arn:aws:s3:::{bucket}/*"


def _list_statement(sid: str, uris: Iterable[str]) -> list[dict[str, Any]]:
    """s3:ListBucket (and GetBucketLocation) per bucket, limited to the URIs' prefixes."""
    by_bucket: dict[str, set[str]] = {}
    for uri in uris:
        bucket, key = parse_s3_uri(uri)
        by_bucket.setdefault(bucket, set()).add(f"{key.rstrip('/')}*" if key else "*")
    return [
        {
            "Sid": f"{sid}{i}",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": sorted(prefixes)}},
        }
        for i, (bucket, prefixes) in enumerate(sorted(by_bucket.items()))
    ]


def step_uris(spec: EmrSpec) -> tuple[list[str], list[str]]:
    """(S3 URIs the steps read, S3 URIs they write), from each step's arguments parsed by its command's parser.

    Every option holding an ``s3://`` URI (or a Mountpoint path) is read, except the options the step
    type writes (:func:`softlines_attr.emr.steptypes.step_reads_writes`).
    """
    reads: list[str] = []
    writes: list[str] = []
    for step in spec.steps:
        stype = step_type(step.type)
        step_reads, step_writes = step_reads_writes(stype, validate_step_args(stype, step.args, step=step.name))
        reads += step_reads
        writes += step_writes
        for extra in (step.conf, step.taxonomy):
            if extra.startswith("s3://"):
                reads.append(extra)
    reads += list(spec.data.extra_read_prefixes)
    writes += list(spec.data.extra_write_prefixes)
    return sorted(set(reads)), sorted(set(writes))


def service_role(spec: EmrSpec) -> dict[str, Any]:
    """The EMR service role."""
    passed = [role_arn(spec, spec.roles.instance_role_name)]
    statements = [
        {
            "Sid": "PassInstanceRole",
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": passed,
            "Condition": {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}},
        }
    ]
    if spec.roles.autoscaling_role:
        statements.append(
            {
                "Sid": "PassAutoScalingRole",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": role_arn(spec, spec.roles.autoscaling_role),
                "Condition": {"StringEquals": {"iam:PassedToService": "application-autoscaling.amazonaws.com"}},
            }
        )
    return {
        "RoleName": spec.roles.service_role,
        "Description": f"EMR service role of the {spec.name} clusters",
        "AssumeRolePolicyDocument": _trust(
            "elasticmapreduce.amazonaws.com",
            {
                "StringEquals": {"aws:SourceAccount": spec.account_id},
                "ArnLike": {"aws:SourceArn": f"arn:aws:elasticmapreduce:{spec.region}:{spec.account_id}:*"},
            },
        ),
        "ManagedPolicyArns": [EMR_SERVICE_POLICY_V2],
        "Policies": [{"PolicyName": "pass-cluster-roles", "PolicyDocument": _policy(*statements)}],
    }


def instance_role(spec: EmrSpec) -> dict[str, Any]:
    """The nodes' instance role (and its instance profile's name)."""
    reads, writes = step_uris(spec)
    release = spec.release_prefix
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadReleases", "Effect": "Allow", "Action": "s3:GetObject", "Resource": _object_arn(release)},
    ]
    if reads:
        statements.append(
            {
                "Sid": "ReadInputs",
                "Effect": "Allow",
                "Action": "s3:GetObject",
                "Resource": sorted({_object_arn(u) for u in reads}),
            }
        )
    if writes:
        statements.append(
            {
                "Sid": "WriteOutputs",
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": sorted({_object_arn(u) for u in writes}),
            }
        )
    statements.append(
        {"Sid": "WriteLogs", "Effect": "Allow", "Action": "s3:PutObject", "Resource": _object_arn(spec.log_uri)}
    )
    statements.extend(_list_statement("List", [release, spec.log_uri, *reads, *writes]))
    return {
        "RoleName": spec.roles.instance_role_name,
        "InstanceProfileName": spec.roles.instance_profile,
        "Description": f"EC2 instance role of the {spec.name} cluster nodes",
        "AssumeRolePolicyDocument": {
            "Version": VERSION,
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        },
        "ManagedPolicyArns": [],
        "Policies": [{"PolicyName": "softlines-attr-data", "PolicyDocument": _policy(*statements)}],
    }


def _cluster_arn(spec: EmrSpec) -> str:
    return f"arn:aws:elasticmapreduce:{spec.region}:{spec.account_id}:cluster/*"


def _pass_cluster_roles(spec: EmrSpec) -> dict[str, Any]:
    roles = [role_arn(spec, spec.roles.service_role), role_arn(spec, spec.roles.instance_role_name)]
    if spec.roles.autoscaling_role:
        roles.append(role_arn(spec, spec.roles.autoscaling_role))
    return {
        "Sid": "PassClusterRoles",
        "Effect": "Allow",
        "Action": "iam:PassRole",
        "Resource": roles,
        "Condition": {"StringEquals": {"iam:PassedToService": ["elasticmapreduce.amazonaws.com", "ec2.amazonaws.com"]}},
    }


def state_machine_role(spec: EmrSpec) -> dict[str, Any]:
    """The Step Functions execution role."""
    sm_arn = state_machine_arn(spec)
    return {
        "RoleName": spec.schedule.state_machine_role,
        "Description": f"Step Functions role of the {spec.name} pipeline: one transient EMR cluster per run",
        "AssumeRolePolicyDocument": _trust(
            "states.amazonaws.com",
            {"StringEquals": {"aws:SourceAccount": spec.account_id}, "ArnLike": {"aws:SourceArn": f"{sm_arn}*"}},
        ),
        "ManagedPolicyArns": [],
        "Policies": [
            {
                "PolicyName": "run-emr-pipeline",
                "PolicyDocument": _policy(
                    {
                        "Sid": "CreateCluster",
                        "Effect": "Allow",
                        "Action": "elasticmapreduce:RunJobFlow",
                        "Resource": "*",
                    },
                    {
                        "Sid": "DriveCluster",
                        "Effect": "Allow",
                        "Action": [
                            "elasticmapreduce:DescribeCluster",
                            "elasticmapreduce:AddJobFlowSteps",
                            "elasticmapreduce:DescribeStep",
                            "elasticmapreduce:CancelSteps",
                            "elasticmapreduce:TerminateJobFlows",
                            "elasticmapreduce:AddTags",
                        ],
                        "Resource": _cluster_arn(spec),
                    },
                    _pass_cluster_roles(spec),
                    {
                        "Sid": "ReadStepSummaries",
                        "Effect": "Allow",
                        "Action": "s3:GetObject",
                        "Resource": sorted({_object_arn(u) for u in step_uris(spec)[1]}),
                    },
                    {
                        "Sid": "SyncIntegrationRules",
                        "Effect": "Allow",
                        "Action": ["events:PutTargets", "events:PutRule", "events:DescribeRule"],
                        "Resource": [f"arn:aws:events:{spec.region}:{spec.account_id}:rule/{r}" for r in SFN_EMR_RULES],
                    },
                ),
            }
        ],
    }


def scheduler_role(spec: EmrSpec) -> dict[str, Any]:
    """The EventBridge Scheduler role: start executions of the one state machine."""
    return {
        "RoleName": spec.schedule.scheduler_role,
        "Description": f"EventBridge Scheduler role of the {spec.name} schedule",
        "AssumeRolePolicyDocument": _trust(
            "scheduler.amazonaws.com", {"StringEquals": {"aws:SourceAccount": spec.account_id}}
        ),
        "ManagedPolicyArns": [],
        "Policies": [
            {
                "PolicyName": "start-pipeline",
                "PolicyDocument": _policy(
                    {
                        "Sid": "StartPipeline",
                        "Effect": "Allow",
                        "Action": "states:StartExecution",
                        "Resource": state_machine_arn(spec),
                    }
                ),
            }
        ],
    }


def operator_policy(spec: EmrSpec) -> dict[str, Any]:
    """What the person or CI job running ``softlines-attr emr ...`` needs (attach to them)."""
    sched = spec.schedule
    schedule_arns = [
        f"arn:aws:scheduler:{spec.region}:{spec.account_id}:schedule/{sched.group}/{name}"
        for name in (sched.name, sched.audit_name)
        if name
    ]
    return {
        "PolicyName": f"{spec.name}-emr-operator",
        "PolicyDocument": _policy(
            {
                "Sid": "StageReleases",
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject"],
                "Resource": _object_arn(spec.release_prefix),
            },
            {"Sid": "ReadStepLogs", "Effect": "Allow", "Action": "s3:GetObject", "Resource": _object_arn(spec.log_uri)},
            *_list_statement("List", [spec.release_prefix, spec.log_uri]),
            {
                "Sid": "NoResourceLevelActions",
                "Effect": "Allow",
                "Action": ["sts:GetCallerIdentity", "elasticmapreduce:RunJobFlow", "elasticmapreduce:ListClusters"],
                "Resource": "*",
            },
            {
                "Sid": "DriveClusters",
                "Effect": "Allow",
                "Action": [
                    "elasticmapreduce:DescribeCluster",
                    "elasticmapreduce:AddJobFlowSteps",
                    "elasticmapreduce:DescribeStep",
                    "elasticmapreduce:ListSteps",
                    "elasticmapreduce:TerminateJobFlows",
                    "elasticmapreduce:AddTags",
                ],
                "Resource": _cluster_arn(spec),
            },
            {
                "Sid": "CheckRoles",
                "Effect": "Allow",
                "Action": ["iam:GetRole", "iam:GetInstanceProfile"],
                "Resource": [
                    role_arn(spec, spec.roles.service_role),
                    role_arn(spec, spec.roles.instance_role_name),
                    f"arn:aws:iam::{spec.account_id}:instance-profile/{spec.roles.instance_profile}",
                    role_arn(spec, sched.state_machine_role),
                    role_arn(spec, sched.scheduler_role),
                ],
            },
            _pass_cluster_roles(spec),
            {
                "Sid": "PassPipelineRoles",
                "Effect": "Allow",
                "Action": "iam:PassRole",
                "Resource": [role_arn(spec, sched.state_machine_role), role_arn(spec, sched.scheduler_role)],
                "Condition": {
                    "StringEquals": {"iam:PassedToService": ["states.amazonaws.com", "scheduler.amazonaws.com"]}
                },
            },
            {
                "Sid": "ManageStateMachine",
                "Effect": "Allow",
                "Action": [
                    "states:CreateStateMachine",
                    "states:UpdateStateMachine",
                    "states:DescribeStateMachine",
                    "states:TagResource",
                ],
                "Resource": state_machine_arn(spec),
            },
            {
                "Sid": "ManageSchedule",
                "Effect": "Allow",
                "Action": ["scheduler:GetSchedule", "scheduler:CreateSchedule", "scheduler:UpdateSchedule"],
                "Resource": schedule_arns,
            },
        ),
    }


def documents(spec: EmrSpec) -> dict[str, dict[str, Any]]:
    """Every IAM document, by file name under ``emr/iam/``."""
    return {
        "emr-service-role.json": service_role(spec),
        "emr-instance-role.json": instance_role(spec),
        "state-machine-role.json": state_machine_role(spec),
        "scheduler-role.json": scheduler_role(spec),
        "operator-policy.json": operator_policy(spec),
    }


def render(document: dict[str, Any]) -> str:
    """A document as the JSON text written to ``emr/iam/``."""
    return json.dumps(document, indent=2) + "\n"
