"""The cluster's half of RunJobFlow: nodes, EBS, bootstrap action, EMR configurations, tags.

Design choices:

* **The wheel is installed by a bootstrap action**, not shipped with ``--py-files``: the package
  needs native dependencies (``mxnet-cu112`` on GPU nodes, numpy, pillow, pyarrow) that a zip on
  ``PYTHONPATH`` cannot carry, and its bundled ``conf/`` defaults live in the wheel's data files.
  Every node gets ``/opt/softlines-attr/venv`` and Spark's ``spark.pyspark.python`` points at it.
* **GPU scheduling** is turned on for YARN (resource plugin ``yarn.io/gpu``, LinuxContainerExecutor
  with cgroup device isolation, the DominantResourceCalculator) and for Spark (the profile's
  ``spark.executor.resource.gpu.*`` amounts and discovery script, ``spark.python.worker.reuse``,
  the Arrow batch size), all as EMR configurations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from softlines_attr.emr.release import Release
from softlines_attr.emr.spec import EmrSpec, NodeSpec
from softlines_attr.emr.steptypes import MOUNT_ROOT, RUN_ID_PLACEHOLDER
from softlines_attr.errors import ConfigError

BOOTSTRAP_SCRIPT = "emr/bootstrap/install_softlines_attr.sh"
#: Where the bootstrap installs on every node: the venv and a copy of the release files.
PREFIX = "/opt/softlines-attr"
VENV_PYTHON = f"{PREFIX}/venv/bin/python"
LOCAL_RELEASE = f"{PREFIX}/release"
#: The GPU discovery script the bootstrap installs on every node (emr/gpu/getGpusResources.sh).
GPU_DISCOVERY_SCRIPT = f"{PREFIX}/bin/getGpusResources.sh"
DOMINANT_RESOURCE_CALCULATOR = "org.apache.hadoop.yarn.util.resource.DominantResourceCalculator"
LINUX_CONTAINER_EXECUTOR = "org.apache.hadoop.yarn.server.nodemanager.LinuxContainerExecutor"
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


def configurations(spec: EmrSpec, profile_conf: Mapping[str, str], *, gpu: bool = True) -> list[dict[str, Any]]:
    """EMR configurations: Spark defaults and env, YARN GPU scheduling and isolation, the capacity scheduler.

    Without ``gpu`` (the audit's master-only cluster) the YARN GPU plugin and isolation are left out: a
    NodeManager with the GPU plugin does not start on a node without ``nvidia-smi``.
    """
    root = cgroup_root(spec.release_label)
    spark = [
        {"Classification": "spark-defaults", "Properties": spark_defaults(spec, profile_conf)},
        {
            "Classification": "spark-env",
            "Properties": {},
            "Configurations": [
                {
                    "Classification": "export",
                    "Properties": {"PYSPARK_PYTHON": VENV_PYTHON, "PYSPARK_DRIVER_PYTHON": VENV_PYTHON},
                }
            ],
        },
    ]
    if not gpu:
        return spark
    return [
        *spark,
        {
            "Classification": "yarn-site",
            "Properties": {
                "yarn.resource-types": "yarn.io/gpu",
                "yarn.nodemanager.resource-plugins": "yarn.io/gpu",
                "yarn.nodemanager.resource-plugins.gpu.allowed-gpu-devices": "auto",
                "yarn.nodemanager.resource-plugins.gpu.path-to-discovery-executables": "/usr/bin",
                "yarn.nodemanager.container-executor.class": LINUX_CONTAINER_EXECUTOR,
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


def mounted_prefixes(spec: EmrSpec) -> list[str]:
    """The ``bucket/prefix/`` folders the steps read through Mountpoint (their ``/mnt/s3/<bucket>/<prefix>/``
    arguments); each is mounted alone (``mount-s3 --prefix``), so the nodes list and read nothing else."""
    found = set()
    for step in spec.steps:
        for arg in step.args:
            if arg.startswith(MOUNT_ROOT + "/"):
                path = arg[len(MOUNT_ROOT) + 1 :].split(RUN_ID_PLACEHOLDER)[0].rstrip("/")
                if "/" in path:
                    found.add(path + "/")
    return sorted(found)


def bootstrap_actions(spec: EmrSpec, release: Release) -> list[dict[str, Any]]:
    """The one bootstrap action: install Python 3.11 and the release's wheel on every node (and mount the buckets
    the steps read through Mountpoint)."""
    args = [release.uri]
    if spec.pip_index_url:
        args += ["--index-url", spec.pip_index_url]
    for folder in mounted_prefixes(spec):
        args += ["--mount-s3", folder]
    return [
        {
            "Name": "install-softlines-attr",
            "ScriptBootstrapAction": {"Path": release.s3_uri(BOOTSTRAP_SCRIPT), "Args": args},
        }
    ]


def ebs_configuration(node: NodeSpec) -> dict[str, Any] | None:
    """EBS volumes of one node type, or ``None`` for none."""
    if node.ebs_gb <= 0:
        return None
    return {
        "EbsBlockDeviceConfigs": [
            {
                "VolumeSpecification": {"VolumeType": node.ebs_volume_type, "SizeInGB": node.ebs_gb},
                "VolumesPerInstance": node.ebs_volumes,
            }
        ],
        "EbsOptimized": True,
    }


def _nodes(spec: EmrSpec, *, cpu_only: bool = False) -> list[tuple[str, NodeSpec]]:
    nodes = [("MASTER", spec.instances.master)]
    if cpu_only:  # the audit's cluster: the master alone (a single-node cluster runs YARN there)
        return nodes
    nodes.append(("CORE", spec.instances.core))
    if spec.instances.task is not None and spec.instances.task.count > 0:
        nodes.append(("TASK", spec.instances.task))
    return nodes


def instance_groups(spec: EmrSpec, *, cpu_only: bool = False) -> list[dict[str, Any]]:
    """``Instances.InstanceGroups``: one type per node type; the task group only when its count > 0."""
    groups = []
    for role, node in _nodes(spec, cpu_only=cpu_only):
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


def instance_fleets(spec: EmrSpec, *, cpu_only: bool = False) -> list[dict[str, Any]]:
    """``Instances.InstanceFleets``: several types per node type (weight 1 each), spot with a fallback."""
    fleets = []
    for role, node in _nodes(spec, cpu_only=cpu_only):
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


def instances(spec: EmrSpec, *, keep_alive: bool, cpu_only: bool = False) -> dict[str, Any]:
    """``Instances``: groups or fleets (only the master with ``cpu_only``), network, whether the cluster outlives
    its steps."""
    net = spec.network
    out: dict[str, Any] = {"KeepJobFlowAliveWhenNoSteps": keep_alive, "TerminationProtected": False}
    if spec.instances.kind == "groups":
        out["InstanceGroups"] = instance_groups(spec, cpu_only=cpu_only)
        out["Ec2SubnetId"] = net.subnet_ids[0]
    else:
        out["InstanceFleets"] = instance_fleets(spec, cpu_only=cpu_only)
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
