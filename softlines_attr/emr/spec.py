"""The EMR cluster, step and schedule spec (``conf/emr.toml``), parsed strictly into frozen dataclasses.

The spec is a deployment file: copy ``conf/emr.toml``, set your account, buckets, subnet and roles, and
pass it with ``--conf``. It is parsed with :func:`softlines_attr.config.parse_dataclass`, so an unknown
key, a wrong type or a missing key is a :class:`~softlines_attr.errors.ConfigError` naming the file, the
key and what was expected. :func:`load_emr_spec` adds the checks a type cannot express (S3 URIs, GPU
instance families for core/task nodes, one instance type per instance group, the job arguments of
every step).

No credentials belong here: boto3 finds them through its standard chain (environment, profile,
instance role); ``--profile`` picks a named profile.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal

from softlines_attr.config import default_conf_dir, parse_dataclass, read_toml
from softlines_attr.errors import ConfigError

log = logging.getLogger(__name__)

#: EC2 families with NVIDIA GPUs that EMR supports; core and task nodes must be one of them.
GPU_FAMILIES: tuple[str, ...] = ("g4dn", "g5", "g6", "g6e", "p3", "p4d", "p4de", "p5")

#: Values that mark a key of the shipped ``conf/emr.toml`` as still to be set by the user.
PLACEHOLDER_MARK = "change-me"
PLACEHOLDER_ACCOUNT = "000000000000"

_S3_URI_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_SCHEDULE_RE = re.compile(r"^(cron|rate|at)\(.+\)$")


# --------------------------------------------------------------------------------------------
# The jobs' command lines (the contract with jobs/*.py)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobArgs:
    """The arguments a ``jobs/<name>.py`` entry point takes, for checking a step's ``args``.

    Attributes:
        script: The job file, relative to the release root.
        required: Flags every step of this job must give.
        optional: Flags a step may give.
        multi: Flags that take one or more values (the others take exactly one).
        together: Groups of flags that must be given all or none.
        inputs: Flags whose values are read (for the instance role's S3 read grants).
        outputs: Flags whose values are written (for the instance role's S3 write grants).
        taxonomy: Whether the job accepts ``--taxonomy FILE``.
    """

    script: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    multi: tuple[str, ...] = ()
    together: tuple[tuple[str, ...], ...] = ()
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ("--out",)
    taxonomy: bool = False


JOBS: dict[str, JobArgs] = {
    # spark-submit jobs/build_labels.py --catalog PATH --out DIR [--conf FILE] [--taxonomy FILE]
    "build_labels": JobArgs(
        script="jobs/build_labels.py",
        required=("--catalog", "--out"),
        inputs=("--catalog",),
        taxonomy=True,
    ),
    # spark-submit jobs/shard_images.py --labels DIR --out DIR --vocab-size N [--conf FILE]
    #                                   [--tags PATH --attribute NAME]
    "shard_images": JobArgs(
        script="jobs/shard_images.py",
        required=("--labels", "--out", "--vocab-size"),
        optional=("--tags", "--attribute"),
        together=(("--tags", "--attribute"),),
        inputs=("--labels", "--tags"),
    ),
    # spark-submit jobs/score.py --catalog PATH --models DIR [DIR ...] --out DIR [--previous DIR]
    #                            [--input-format F] [--run-id ID] [--conf FILE] [--taxonomy FILE]
    "score": JobArgs(
        script="jobs/score.py",
        required=("--catalog", "--models", "--out"),
        optional=("--previous", "--input-format", "--run-id"),
        multi=("--models",),
        inputs=("--catalog", "--models", "--previous"),
        taxonomy=True,
    ),
}

#: Flags set from a step's own keys (``conf``, ``taxonomy``) and the spec's ``spark_profile``.
MANAGED_FLAGS: tuple[str, ...] = ("--conf", "--taxonomy", "--spark-profile")


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
        "capacity-optimized", "price-capacity-optimized", "lowest-price", "diversified", "capacity-optimized-prioritized"
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
    """One pipeline step: a spark-submit of ``jobs/<job>.py`` with its arguments.

    Attributes:
        name: The EMR step name (unique in the spec).
        job: Which job (``build_labels``, ``shard_images``, ``score``).
        args: The job's own arguments (``--catalog``, ``--out`` ...), checked against :data:`JOBS`.
        conf: A pipeline override TOML, relative to the release root (``conf/...``) or an ``s3://`` URI;
            shipped with ``--files`` and passed as ``--conf``. Empty: the wheel's bundled defaults.
        taxonomy: A taxonomy TOML, same rules as ``conf`` (only jobs that take ``--taxonomy``).
        spark_submit_args: Extra spark-submit options placed before the job file.
        timeout_minutes: The Step Functions time limit of this step; 0 = ``schedule.step_timeout_minutes``.
    """

    name: str
    job: Literal["build_labels", "shard_images", "score"]
    args: tuple[str, ...]
    conf: str = ""
    taxonomy: str = ""
    spark_submit_args: tuple[str, ...] = ()
    timeout_minutes: int = 0


@dataclass(frozen=True)
class ScheduleSpec:
    """The EventBridge Scheduler schedule and the Step Functions state machine it starts."""

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
    """A whole EMR deployment of the pipeline: cluster, steps, schedule."""

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


# --------------------------------------------------------------------------------------------
# Loading and checks
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


def _fail(spec: EmrSpec, key: str, expected: str, found: Any) -> ConfigError:
    return ConfigError(f"{spec.source}: key {key!r}: expected {expected}, found {found!r}")


def instance_family(instance_type: str) -> str:
    """``g4dn.2xlarge`` -> ``g4dn``."""
    return instance_type.split(".", 1)[0]


def _validate_node(spec: EmrSpec, role: str, node: NodeSpec) -> None:
    key = f"instances.{role}"
    if not node.instance_types:
        raise _fail(spec, f"{key}.instance_types", "at least one instance type", list(node.instance_types))
    if spec.instances.kind == "groups" and len(node.instance_types) != 1:
        raise _fail(spec, f"{key}.instance_types", "exactly one type for instance groups (use kind = \"fleets\" for several)", list(node.instance_types))
    minimum = 0 if role == "task" else 1
    if node.count < minimum:
        raise _fail(spec, f"{key}.count", f"an integer >= {minimum}", node.count)
    if role == "master" and spec.instances.kind == "groups" and node.count not in (1, 3):
        raise _fail(spec, f"{key}.count", "1, or 3 for high availability", node.count)
    if role in ("core", "task"):
        for itype in node.instance_types:
            if instance_family(itype) not in GPU_FAMILIES:
                raise _fail(spec, f"{key}.instance_types", f"GPU instance types (families {list(GPU_FAMILIES)}): the executors request GPUs", itype)
    if node.ebs_gb < 0 or node.ebs_volumes < 1:
        raise _fail(spec, f"{key}.ebs_gb", "ebs_gb >= 0 and ebs_volumes >= 1", (node.ebs_gb, node.ebs_volumes))
    if node.market == "SPOT" and role != "task":
        log.warning("%s: instances.%s uses SPOT: a reclaimed %s node fails the running step", spec.source, role, role)


def parse_job_args(args: Sequence[str]) -> dict[str, list[str]]:
    """Split ``["--out", "x", "--models", "a", "b"]`` into ``{"--out": ["x"], "--models": ["a", "b"]}``.

    ``--flag=value`` is accepted too. A value before the first flag, or a repeated flag, is an error.

    Raises:
        ValueError: describing the first problem.
    """
    parsed: dict[str, list[str]] = {}
    current: str | None = None
    for token in args:
        if token.startswith("--"):
            flag, eq, value = token.partition("=")
            if flag in parsed:
                raise ValueError(f"flag {flag} given twice")
            parsed[flag] = [value] if eq else []
            current = flag
        elif current is None:
            raise ValueError(f"value {token!r} before any flag")
        else:
            parsed[current].append(token)
    return parsed


def validate_step(spec: EmrSpec, index: int, step: StepSpec) -> dict[str, list[str]]:
    """Check one step's arguments against its job's command line; return the parsed flags."""
    key = f"steps[{index}]"
    job = JOBS[step.job]
    try:
        parsed = parse_job_args(step.args)
    except ValueError as exc:
        raise _fail(spec, f"{key}.args", "flags followed by their values", f"{list(step.args)} ({exc})") from None
    known = set(job.required) | set(job.optional)
    for flag, values in parsed.items():
        if flag in MANAGED_FLAGS:
            raise _fail(spec, f"{key}.args", f"no {flag} (set the step's `conf`/`taxonomy` keys or the spec's `spark_profile`)", flag)
        if flag not in known:
            raise _fail(spec, f"{key}.args", f"flags of jobs/{step.job}.py, one of {sorted(known)}", flag)
        if flag in job.multi:
            if not values:
                raise _fail(spec, f"{key}.args", f"one or more values after {flag}", list(step.args))
        elif len(values) != 1:
            raise _fail(spec, f"{key}.args", f"exactly one value after {flag}", values)
    missing = [f for f in job.required if f not in parsed]
    if missing:
        raise _fail(spec, f"{key}.args", f"the required flags {list(job.required)} of jobs/{step.job}.py", f"{list(step.args)} (missing {missing[0]})")
    for group in job.together:
        given = [f for f in group if f in parsed]
        if given and len(given) != len(group):
            raise _fail(spec, f"{key}.args", f"{' and '.join(group)} together", given)
    if "--vocab-size" in parsed and not re.fullmatch(r"\d+", parsed["--vocab-size"][0]):
        raise _fail(spec, f"{key}.args", "--vocab-size N with N an integer >= 0", parsed["--vocab-size"][0])
    if step.taxonomy and not job.taxonomy:
        raise _fail(spec, f"{key}.taxonomy", f"nothing: jobs/{step.job}.py takes no --taxonomy", step.taxonomy)
    for sub in ("conf", "taxonomy"):
        value = getattr(step, sub)
        if value and not (value.startswith("s3://") or (not value.startswith("/") and value.endswith(".toml"))):
            raise _fail(spec, f"{key}.{sub}", "a .toml path relative to the release root (conf/...) or an s3:// URI", value)
    if step.timeout_minutes < 0:
        raise _fail(spec, f"{key}.timeout_minutes", "an integer >= 0", step.timeout_minutes)
    return parsed


def validate_spec(spec: EmrSpec) -> None:
    """The checks a field type cannot express; raise ``ConfigError`` naming the key."""
    if not _ACCOUNT_RE.match(spec.account_id):
        raise _fail(spec, "account_id", "a 12-digit AWS account id", spec.account_id)
    if not _NAME_RE.match(spec.name):
        raise _fail(spec, "name", "a name of letters, digits, '-', '_', '.' (at most 64)", spec.name)
    if not re.fullmatch(r"emr-\d+\.\d+\.\d+", spec.release_label):
        raise _fail(spec, "release_label", "an EMR release label like 'emr-7.11.0'", spec.release_label)
    if int(spec.release_label[4:].split(".")[0]) < 6:
        raise _fail(spec, "release_label", "emr-6.x or later (Spark 3 GPU scheduling)", spec.release_label)
    for key in ("log_uri", "release_prefix"):
        value = getattr(spec, key)
        if not _S3_URI_RE.match(value) or not value.endswith("/"):
            raise _fail(spec, key, "an s3://bucket/prefix/ URI ending in '/'", value)
    if "Spark" not in spec.applications:
        raise _fail(spec, "applications", "a list holding 'Spark'", list(spec.applications))
    if spec.idle_timeout_minutes < 1 or spec.idle_timeout_minutes > 7 * 24 * 60:
        raise _fail(spec, "idle_timeout_minutes", "1 .. 10080 (EMR's auto-termination range is 60 s .. 7 days)", spec.idle_timeout_minutes)
    if not spec.network.subnet_ids:
        raise _fail(spec, "network.subnet_ids", "at least one subnet id", [])
    if spec.instances.kind == "groups" and len(spec.network.subnet_ids) != 1:
        raise _fail(spec, "network.subnet_ids", "exactly one subnet for instance groups (fleets may list several)", list(spec.network.subnet_ids))
    nodes = [("master", spec.instances.master), ("core", spec.instances.core)]
    if spec.instances.task is not None:
        nodes.append(("task", spec.instances.task))
    for role, node in nodes:
        _validate_node(spec, role, node)
    if not spec.steps:
        raise _fail(spec, "steps", "at least one [[steps]] table", [])
    names = [s.name for s in spec.steps]
    for index, step in enumerate(spec.steps):
        if not _NAME_RE.match(step.name) or step.name in names[:index]:
            raise _fail(spec, f"steps[{index}].name", "a unique name of letters, digits, '-', '_', '.'", step.name)
        validate_step(spec, index, step)
    sched = spec.schedule
    if not _SCHEDULE_RE.match(sched.expression):
        raise _fail(spec, "schedule.expression", "cron(...), rate(...) or at(...)", sched.expression)
    for key in ("name", "state_machine_name", "state_machine_role", "scheduler_role", "group"):
        if not _NAME_RE.match(getattr(sched, key)):
            raise _fail(spec, f"schedule.{key}", "a name of letters, digits, '-', '_', '.' (at most 64)", getattr(sched, key))
    if sched.step_timeout_minutes < 1 or sched.create_cluster_timeout_minutes < 1:
        raise _fail(spec, "schedule.step_timeout_minutes", "timeouts >= 1 minute", (sched.step_timeout_minutes, sched.create_cluster_timeout_minutes))
    if spec.wait.poll_seconds < 0 or spec.wait.timeout_minutes < 1:
        raise _fail(spec, "wait.poll_seconds", "poll_seconds >= 0 and timeout_minutes >= 1", (spec.wait.poll_seconds, spec.wait.timeout_minutes))
    for key in ("extra_read_prefixes", "extra_write_prefixes"):
        for uri in getattr(spec.data, key):
            if not _S3_URI_RE.match(uri):
                raise _fail(spec, f"data.{key}", "s3:// URIs", uri)


def _walk(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if is_dataclass(value):
        for f in fields(value):
            yield from _walk(getattr(value, f.name), f"{prefix}{f.name}.")
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _walk(v, f"{prefix}{k}.")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _walk(v, f"{prefix[:-1]}[{i}].")
    else:
        yield prefix[:-1], value


def placeholders(spec: EmrSpec) -> list[str]:
    """The keys that still hold the shipped placeholder values (``change-me``, account 000000000000)."""
    found = []
    for key, value in _walk(spec, ""):
        if key == "source":
            continue
        if isinstance(value, str) and (PLACEHOLDER_MARK in value or value == PLACEHOLDER_ACCOUNT):
            found.append(key)
    return found


def require_no_placeholders(spec: EmrSpec) -> None:
    """Refuse to call AWS with the shipped example values; ``--dry-run`` does not need this."""
    keys = placeholders(spec)
    if keys:
        raise ConfigError(
            f"{spec.source}: keys {keys[:6]}{' ...' if len(keys) > 6 else ''} still hold the example values "
            f"({PLACEHOLDER_MARK!r} / account {PLACEHOLDER_ACCOUNT}); expected your own account, buckets, subnet and "
            "roles (copy conf/emr.toml and edit it; see docs/EMR.md)"
        )


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``; ``s3n://`` and ``s3a://`` (EMR's log URIs) too."""
    m = re.match(r"^s3[an]?://([^/]+)/?(.*)$", uri)
    if not m:
        raise ConfigError(f"expected an s3://bucket/key URI, found {uri!r}")
    return m.group(1), m.group(2)
