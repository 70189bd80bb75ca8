"""The EMR cluster, step and schedule spec (``conf/emr.toml``), parsed strictly into frozen dataclasses.

The spec is a deployment file: copy ``conf/emr.toml``, set your account, buckets, subnet and roles, and
pass it with ``--conf``. It is parsed with :func:`softlines_attr.config.parse_dataclass`, so an unknown
key, a wrong type or a missing key is a :class:`~softlines_attr.errors.ConfigError` naming the file, the
key and what was expected. :func:`load_emr_spec` adds the checks a type cannot express (:mod:`checks`: S3 URIs, GPU
instance families for core/task nodes, one instance type per instance group, the job arguments of
every step).

No credentials belong here: boto3 finds them through its standard chain (environment, profile,
instance role); ``--profile`` picks a named profile.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from softlines_attr.config import default_conf_dir, parse_dataclass, read_toml
from softlines_attr.emr.checks import validate_spec
from softlines_attr.errors import ConfigError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    """One node type of the cluster (master, core or task).

    In ``groups`` mode ``instance_types`` holds exactly one type and ``count`` is the instance count;
    in ``fleets`` mode it lists the types EC2 may choose from (each of weight 1) and ``count`` is the
    target capacity.
    """

    instance_types: tuple[str, ...]
    count: int
    market: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"
    ebs_gb: int = 0
    ebs_volume_type: Literal["gp3", "gp2", "io1", "io2", "st1", "sc1"] = "gp3"
    ebs_volumes: int = 1
    bid_price: str = ""
    spot_timeout_minutes: int = 20
    spot_timeout_action: Literal["SWITCH_TO_ON_DEMAND", "TERMINATE_CLUSTER"] = "SWITCH_TO_ON_DEMAND"
    spot_allocation_strategy: Literal[
        "capacity-optimized",
        "price-capacity-optimized",
        "lowest-price",
        "diversified",
        "capacity-optimized-prioritized",
    ] = "price-capacity-optimized"


@dataclass(frozen=True)
class InstancesSpec:
    """The cluster's nodes: instance groups (one type each) or instance fleets (several types)."""

    kind: Literal["groups", "fleets"]
    master: NodeSpec
    core: NodeSpec
    task: NodeSpec | None = None


@dataclass(frozen=True)
class RolesSpec:
    """IAM role names (never keys): EMR's service role and the nodes' instance profile."""

    service_role: str
    instance_profile: str
    instance_role: str = ""  # the role inside the instance profile; "" = the profile's name
    autoscaling_role: str = ""

    @property
    def instance_role_name(self) -> str:
        """The role in the instance profile (defaults to the profile's own name)."""
        return self.instance_role or self.instance_profile


@dataclass(frozen=True)
class NetworkSpec:
    """Where the nodes run; one subnet for instance groups, one or more for fleets."""

    subnet_ids: tuple[str, ...]
    ec2_key_name: str = ""
    emr_managed_master_security_group: str = ""
    emr_managed_slave_security_group: str = ""
    service_access_security_group: str = ""
    additional_master_security_groups: tuple[str, ...] = ()
    additional_slave_security_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepSpec:
    """One pipeline step: a ``softlines-attr`` command run as an EMR step (:mod:`steptypes`).

    Attributes:
        name: The EMR step name (unique in the spec).
        type: The step type (``labels``, ``shard``, ``train_dist``, ``refine``, ``evaluate``, ``quantize``,
            ``promote``, ``score``, ``audit``): which command, entry point and placement.
        args: The command's own arguments (``--catalog``, ``--out`` ...), parsed by the command's parser.
        conf: A pipeline override TOML, relative to the release root (``conf/...``) or an ``s3://`` URI;
            shipped with ``--files`` and passed as ``--conf``. Empty: the wheel's bundled defaults.
        taxonomy: A taxonomy TOML, same rules as ``conf`` (only commands that take ``--taxonomy``).
        spark_submit_args: Extra spark-submit options placed before the job file.
        timeout_minutes: The Step Functions time limit of this step; 0 = ``schedule.step_timeout_minutes``.
        schedule: ``pipeline`` (the scheduled method, in spec order) or ``audit`` (the audit schedule's
            CPU-only cluster).
    """

    name: str
    type: str
    args: tuple[str, ...]
    conf: str = ""
    taxonomy: str = ""
    spark_submit_args: tuple[str, ...] = ()
    timeout_minutes: int = 0
    schedule: Literal["pipeline", "audit"] = "pipeline"


@dataclass(frozen=True)
class ScheduleSpec:
    """The EventBridge Scheduler schedules and the Step Functions state machine they start.

    ``name``/``expression`` schedule the pipeline's steps; ``audit_name``/``audit_expression`` (both or
    neither, and only with steps of ``schedule = "audit"``) a second schedule of the same machine
    whose executions run the audit steps on a CPU-only cluster.
    """

    name: str
    expression: str
    state_machine_name: str
    state_machine_role: str
    scheduler_role: str
    group: str = "default"
    timezone: str = "UTC"
    enabled: bool = True
    description: str = "softlines-attr pipeline on a transient GPU EMR cluster"
    flexible_window_minutes: int = 0
    step_timeout_minutes: int = 720
    create_cluster_timeout_minutes: int = 60
    create_cluster_retries: int = 2
    max_retry_attempts: int = 3
    max_event_age_seconds: int = 3600
    audit_name: str = ""
    audit_expression: str = ""


@dataclass(frozen=True)
class WaitSpec:
    """How ``emr wait`` follows a cluster."""

    poll_seconds: int = 30
    timeout_minutes: int = 1440
    stderr_tail_lines: int = 60
    max_log_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True)
class DataSpec:
    """S3 prefixes the instance role may read beyond the steps' arguments (the images in image_uri)."""

    extra_read_prefixes: tuple[str, ...] = ()
    extra_write_prefixes: tuple[str, ...] = ()


@dataclass(frozen=True)
class EmrSpec:
    """A whole EMR deployment of the pipeline: cluster, steps, schedule.

    ``spark_profile`` is the GPU steps' Spark profile (and the cluster's spark-defaults);
    ``cpu_spark_profile`` the CPU steps' (on the master, ``local[*]``, with ``cpu_driver_memory``).
    """

    name: str
    account_id: str
    region: str
    release_label: str
    log_uri: str
    release_prefix: str
    roles: RolesSpec
    network: NetworkSpec
    instances: InstancesSpec
    steps: tuple[StepSpec, ...]
    schedule: ScheduleSpec
    applications: tuple[str, ...] = ("Hadoop", "Spark")
    transient: bool = True
    idle_timeout_minutes: int = 60
    ebs_root_volume_gb: int = 64
    spark_profile: str = "emr_gpu"
    cpu_spark_profile: str = "emr_cpu"
    cpu_driver_memory: str = "16g"
    deploy_mode: Literal["cluster", "client"] = "cluster"
    pip_index_url: str = ""
    security_configuration: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    spark_defaults: dict[str, str] = field(default_factory=dict)
    data: DataSpec = field(default_factory=DataSpec)
    wait: WaitSpec = field(default_factory=WaitSpec)
    source: str = "<defaults>"

    def step(self, name: str) -> StepSpec:
        """Return the step called ``name``; raise ``ConfigError`` naming the choices."""
        for step in self.steps:
            if step.name == name:
                return step
        raise ConfigError(f"{self.source}: no step {name!r}; expected one of {[s.name for s in self.steps]}")

    def steps_of(self, schedule: str) -> tuple[StepSpec, ...]:
        """The steps of the ``pipeline`` or the ``audit`` schedule, in spec order."""
        return tuple(s for s in self.steps if s.schedule == schedule)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def default_spec_path() -> Path:
    """``conf/emr.toml`` of the source tree or of the installed wheel."""
    return default_conf_dir() / "emr.toml"


def load_emr_spec(path: Path | str | None = None) -> EmrSpec:
    """Read and check an EMR spec.

    Args:
        path: The spec TOML; ``None`` means ``conf/emr.toml``.

    Returns:
        The frozen :class:`EmrSpec`.

    Raises:
        ConfigError: for a missing file, unknown key, wrong type or an inconsistent value.
    """
    spec_path = Path(path) if path is not None else default_spec_path()
    data = read_toml(spec_path)
    source = str(spec_path)
    if "source" in data:
        raise ConfigError(f"{source}: unknown key 'source'; it is set by the loader")
    spec = parse_dataclass(EmrSpec, {**data, "source": source}, source=source)
    validate_spec(spec)
    log.debug("loaded EMR spec %s (%d steps)", source, len(spec.steps))
    return spec


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; ``s3n://`` and ``s3a://`` (EMR's log URIs) too."""
    m = re.match(r"^s3[an]?://([^/]+)/?(.*)$", uri)
    if not m:
        raise ConfigError(f"expected an s3://bucket/key URI, found {uri!r}")
    return m.group(1), m.group(2)
