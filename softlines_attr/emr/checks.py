"""The checks of an EMR spec that a field type cannot express; each raises ``ConfigError`` naming the key.

S3 URIs, names, the release label, GPU instance families for core and task nodes, one instance type
per instance group, schedule expressions and time limits, and every step's arguments parsed by its
command's own parser (:mod:`steptypes`). :func:`spec.load_emr_spec` runs them on every spec it loads.
"""

from __future__ import annotations

import argparse
import logging
import re
from typing import TYPE_CHECKING, Any

from softlines_attr.emr.errors import EmrSpecError
from softlines_attr.emr.steptypes import accepts, step_type, validate_step_args
from softlines_attr.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover - the spec's types only (spec.py imports this module)
    from softlines_attr.emr.spec import EmrSpec, NodeSpec, StepSpec

log = logging.getLogger(__name__)

#: EC2 families with NVIDIA GPUs that EMR supports; core and task nodes must be one of them.
GPU_FAMILIES: tuple[str, ...] = ("g4dn", "g5", "g6", "g6e", "p3", "p4d", "p4de", "p5")


_S3_URI_RE = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")
_ACCOUNT_RE = re.compile(r"^\d{12}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_SCHEDULE_RE = re.compile(r"^(cron|rate|at)\(.+\)$")


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
        raise _fail(
            spec,
            f"{key}.instance_types",
            'exactly one type for instance groups (use kind = "fleets" for several)',
            list(node.instance_types),
        )
    minimum = 0 if role == "task" else 1
    if node.count < minimum:
        raise _fail(spec, f"{key}.count", f"an integer >= {minimum}", node.count)
    if role == "master" and spec.instances.kind == "groups" and node.count not in (1, 3):
        raise _fail(spec, f"{key}.count", "1, or 3 for high availability", node.count)
    if role in ("core", "task"):
        for itype in node.instance_types:
            if instance_family(itype) not in GPU_FAMILIES:
                raise _fail(
                    spec,
                    f"{key}.instance_types",
                    f"GPU instance types (families {list(GPU_FAMILIES)}): the executors request GPUs",
                    itype,
                )
    if node.ebs_gb < 0 or node.ebs_volumes < 1:
        raise _fail(spec, f"{key}.ebs_gb", "ebs_gb >= 0 and ebs_volumes >= 1", (node.ebs_gb, node.ebs_volumes))
    if node.market == "SPOT" and role != "task":
        log.warning("%s: instances.%s uses SPOT: a reclaimed %s node fails the running step", spec.source, role, role)


def validate_step(spec: EmrSpec, index: int, step: StepSpec) -> argparse.Namespace:
    """Check one step: its type, its arguments by its command's own parser, its conf files and time limit.

    Returns:
        The parsed arguments.

    Raises:
        EmrSpecError: the step's type or arguments are wrong (naming the step).
        ConfigError: another key of the step is wrong.
    """
    key = f"steps[{index}]"
    try:
        stype = step_type(step.type)
        ns = validate_step_args(stype, step.args, step=step.name)
    except EmrSpecError as exc:
        raise EmrSpecError(f"{spec.source}: key '{key}': {exc}") from None
    if step.taxonomy and not accepts(stype, "taxonomy"):
        expected = f"nothing: `softlines-attr {stype.command}` takes no --taxonomy"
        raise _fail(spec, f"{key}.taxonomy", expected, step.taxonomy)
    for sub in ("conf", "taxonomy"):
        value = getattr(step, sub)
        if value and not (value.startswith("s3://") or (not value.startswith("/") and value.endswith(".toml"))):
            raise _fail(
                spec, f"{key}.{sub}", "a .toml path relative to the release root (conf/...) or an s3:// URI", value
            )
    if step.timeout_minutes < 0:
        raise _fail(spec, f"{key}.timeout_minutes", "an integer >= 0", step.timeout_minutes)
    if stype.placement == "gpu_barrier":
        gpu_nodes = spec.instances.core.count + (spec.instances.task.count if spec.instances.task else 0)
        if ns.num_workers > gpu_nodes:
            raise _fail(
                spec,
                f"{key}.args",
                f"--num-workers at most the GPU nodes ({gpu_nodes}): a barrier stage needs all its tasks at once",
                ns.num_workers,
            )
    if stype.gpu and step.schedule == "audit":
        raise _fail(spec, f"{key}.schedule", "'pipeline' for a GPU step (the audit cluster has no GPU)", step.schedule)
    return ns


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
    if not re.fullmatch(r"[1-9]\d*[mg]", spec.cpu_driver_memory):
        raise _fail(spec, "cpu_driver_memory", "a JVM memory size like '20g' or '16384m'", spec.cpu_driver_memory)
    if "Spark" not in spec.applications:
        raise _fail(spec, "applications", "a list holding 'Spark'", list(spec.applications))
    if spec.idle_timeout_minutes < 1 or spec.idle_timeout_minutes > 7 * 24 * 60:
        raise _fail(
            spec,
            "idle_timeout_minutes",
            "1 .. 10080 (EMR's auto-termination range is 60 s .. 7 days)",
            spec.idle_timeout_minutes,
        )
    if not spec.network.subnet_ids:
        raise _fail(spec, "network.subnet_ids", "at least one subnet id", [])
    if spec.instances.kind == "groups" and len(spec.network.subnet_ids) != 1:
        raise _fail(
            spec,
            "network.subnet_ids",
            "exactly one subnet for instance groups (fleets may list several)",
            list(spec.network.subnet_ids),
        )
    nodes = [("master", spec.instances.master), ("core", spec.instances.core)]
    if spec.instances.task is not None:
        nodes.append(("task", spec.instances.task))
    for role, node in nodes:
        _validate_node(spec, role, node)
    if not spec.steps_of("pipeline"):
        raise _fail(spec, "steps", "at least one [[steps]] table of the pipeline", [])
    names = [s.name for s in spec.steps]
    for index, step in enumerate(spec.steps):
        if not _NAME_RE.match(step.name) or step.name in names[:index]:
            raise _fail(spec, f"steps[{index}].name", "a unique name of letters, digits, '-', '_', '.'", step.name)
        validate_step(spec, index, step)
    sched = spec.schedule
    if not _SCHEDULE_RE.match(sched.expression):
        raise _fail(spec, "schedule.expression", "cron(...), rate(...) or at(...)", sched.expression)
    if bool(sched.audit_name) != bool(sched.audit_expression) or bool(sched.audit_name) != bool(spec.steps_of("audit")):
        raise _fail(
            spec,
            "schedule.audit_name",
            "audit_name, audit_expression and steps with schedule = 'audit' all given or all absent",
            (sched.audit_name, sched.audit_expression, [s.name for s in spec.steps_of("audit")]),
        )
    if sched.audit_expression and not _SCHEDULE_RE.match(sched.audit_expression):
        raise _fail(spec, "schedule.audit_expression", "cron(...), rate(...) or at(...)", sched.audit_expression)
    for key in ("name", "state_machine_name", "state_machine_role", "scheduler_role", "group", "audit_name"):
        if key == "audit_name" and not sched.audit_name:
            continue
        if not _NAME_RE.match(getattr(sched, key)):
            raise _fail(
                spec, f"schedule.{key}", "a name of letters, digits, '-', '_', '.' (at most 64)", getattr(sched, key)
            )
    if sched.step_timeout_minutes < 1 or sched.create_cluster_timeout_minutes < 1:
        raise _fail(
            spec,
            "schedule.step_timeout_minutes",
            "timeouts >= 1 minute",
            (sched.step_timeout_minutes, sched.create_cluster_timeout_minutes),
        )
    if spec.wait.poll_seconds < 0 or spec.wait.timeout_minutes < 1:
        raise _fail(
            spec,
            "wait.poll_seconds",
            "poll_seconds >= 0 and timeout_minutes >= 1",
            (spec.wait.poll_seconds, spec.wait.timeout_minutes),
        )
    for key in ("extra_read_prefixes", "extra_write_prefixes"):
        for uri in getattr(spec.data, key):
            if not _S3_URI_RE.match(uri):
                raise _fail(spec, f"data.{key}", "s3:// URIs", uri)
