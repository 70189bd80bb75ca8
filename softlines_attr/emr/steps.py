"""The steps: one ``command-runner.jar`` spark-submit of a ``jobs/<job>.py`` per pipeline step.

**GPU steps run in cluster deploy mode** and reference the release by its S3 URI: the job file
(``<release>/jobs/<job>.py``) and the conf/taxonomy TOMLs (shipped with ``--files`` into the
driver's working directory, so ``--conf NAME.toml`` resolves there). **CPU steps** (and every step
with ``deploy_mode = "client"``) run their driver on the master and read them from the release copy
the bootstrap made (:data:`cluster.LOCAL_RELEASE`). The spark-submit options of each placement are
:func:`_placement_args`; the step's own arguments are checked by its command's parser first.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from softlines_attr.emr.cluster import GPU_DISCOVERY_SCRIPT, LOCAL_RELEASE, VENV_PYTHON
from softlines_attr.emr.release import Release
from softlines_attr.emr.spec import EmrSpec, StepSpec
from softlines_attr.emr.steptypes import (
    RUN_ID_PLACEHOLDER,
    StepType,
    accepts,
    staged,
    step_type,
    validate_step_args,
)
from softlines_attr.errors import ConfigError

COMMAND_RUNNER = "command-runner.jar"


def _shipped_file(spec: EmrSpec, release: Release, value: str, mode: str) -> tuple[str, str]:
    """(what the job is told, what spark-submit ships) for a step's ``conf``/``taxonomy`` value."""
    if mode == "client":
        if value.startswith("s3://"):
            raise ConfigError(
                f"{spec.source}: deploy_mode 'client' reads conf files from the master's disk; "
                f"expected a release path (conf/...), found {value!r}"
            )
        return f"{LOCAL_RELEASE}/{value}", ""
    uri = value if value.startswith("s3://") else release.s3_uri(value)
    return PurePosixPath(value).name, uri


def _placement_args(spec: EmrSpec, stype: StepType, ns: argparse.Namespace) -> list[str]:
    """spark-submit options of the step type's placement (docs/EMR.md, "Where each step runs")."""
    if stype.placement == "cpu":
        return [
            "--master",
            "local[*]",
            "--driver-memory",
            spec.cpu_driver_memory,
            "--conf",
            "spark.executor.resource.gpu.amount=0",
            "--conf",
            "spark.task.resource.gpu.amount=0",
        ]
    if stype.placement == "gpu_barrier":
        return ["--conf", "spark.dynamicAllocation.enabled=false", "--num-executors", str(ns.num_workers)]
    if stype.placement == "gpu_driver":
        return [
            "--conf",
            "spark.driver.resource.gpu.amount=1",
            "--conf",
            f"spark.driver.resource.gpu.discoveryScript={GPU_DISCOVERY_SCRIPT}",
        ]
    return []


def deploy_mode(spec: EmrSpec, stype: StepType) -> str:
    """CPU steps run on the master (client mode); a GPU driver needs YARN (cluster); the rest as the spec says."""
    if stype.placement == "cpu":
        return "client"
    return "cluster" if stype.placement == "gpu_driver" else spec.deploy_mode


def spark_submit_args(spec: EmrSpec, step: StepSpec, release: Release, run_id: str | None = None) -> list[str]:
    """The ``command-runner.jar`` arguments: ``spark-submit [options] <job file> <the command's args>``.

    Args:
        spec: The EMR spec.
        step: The step.
        release: The release whose job and conf files run.
        run_id: ``--run-id`` for the step's output version (the schedule passes its execution's name; every
            step of one execution then commits ``runs/<run_id>/``; ``{run_id}`` in the args is replaced by it);
            ``None``: the command picks one.
    """
    stype = step_type(step.type)
    ns = validate_step_args(stype, step.args, step=step.name)
    mode = deploy_mode(spec, stype)
    job_flags: list[str] = []
    shipped: list[str] = []
    for flag, value in (("--conf", step.conf), ("--taxonomy", step.taxonomy)):
        if value:
            told, uri = _shipped_file(spec, release, value, mode)
            job_flags += [flag, told]
            if uri:
                shipped.append(uri)
    names = [PurePosixPath(u).name for u in shipped]
    if len(set(names)) != len(names):
        raise ConfigError(
            f"{spec.source}: step {step.name!r}: expected conf and taxonomy files with different names, found {names}"
        )
    args = ["spark-submit", "--deploy-mode", mode, "--conf", f"spark.pyspark.python={VENV_PYTHON}"]
    args += _placement_args(spec, stype, ns)
    if shipped:
        args += ["--files", ",".join(shipped)]
    args += list(step.spark_submit_args)
    args.append(f"{LOCAL_RELEASE}/{stype.script}" if mode == "client" else release.s3_uri(stype.script))
    if run_id is None and any(RUN_ID_PLACEHOLDER in a for a in step.args):
        raise ConfigError(
            f"{spec.source}: step {step.name!r}: its args hold {RUN_ID_PLACEHOLDER}; expected a run id to put there"
        )
    args += [a.replace(RUN_ID_PLACEHOLDER, run_id) if run_id else a for a in step.args]
    args += job_flags
    if accepts(stype, "spark_profile"):
        args += ["--spark-profile", spec.spark_profile if stype.gpu else spec.cpu_spark_profile]
    if run_id is not None and (accepts(stype, "run_id") or staged(stype)):
        args += ["--run-id", run_id]
    return args


def step_config(
    spec: EmrSpec, step: StepSpec, release: Release, action_on_failure: str, run_id: str | None = None
) -> dict[str, Any]:
    """One EMR ``StepConfig``: a command-runner.jar spark-submit of the step's job."""
    return {
        "Name": step.name,
        "ActionOnFailure": action_on_failure,
        "HadoopJarStep": {"Jar": COMMAND_RUNNER, "Args": spark_submit_args(spec, step, release, run_id)},
    }


def select_steps(spec: EmrSpec, names: Sequence[str] | None) -> list[StepSpec]:
    """The spec's steps named in ``names`` (in spec order), or all of them."""
    if not names:
        return list(spec.steps)
    for name in names:
        spec.step(name)  # raises ConfigError naming the choices
    return [s for s in spec.steps if s.name in set(names)]
