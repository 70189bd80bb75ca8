"""The steps: one ``command-runner.jar`` spark-submit of a ``jobs/<job>.py`` per pipeline step.

**Steps run in cluster deploy mode** and reference the release by its S3 URI: the job file
(``<release>/jobs/<job>.py``) and the conf/taxonomy TOMLs (shipped with ``--files`` into the
driver's working directory, so ``--conf NAME.toml`` resolves there). In client mode the driver runs
on the master and reads them from the release copy the bootstrap made (:data:`cluster.LOCAL_RELEASE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from softlines_attr.emr.cluster import LOCAL_RELEASE, VENV_PYTHON
from softlines_attr.emr.jobs import JOBS
from softlines_attr.emr.release import Release
from softlines_attr.emr.spec import EmrSpec, StepSpec
from softlines_attr.errors import ConfigError

COMMAND_RUNNER = "command-runner.jar"


def _shipped_file(spec: EmrSpec, release: Release, value: str) -> tuple[str, str]:
    """(what the job is told, what spark-submit ships) for a step's ``conf``/``taxonomy`` value."""
    if spec.deploy_mode == "client":
        if value.startswith("s3://"):
            raise ConfigError(
                f"{spec.source}: deploy_mode 'client' reads conf files from the master's disk; "
                f"expected a release path (conf/...), found {value!r}"
            )
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
        raise ConfigError(
            f"{spec.source}: step {step.name!r}: expected conf and taxonomy files with different names, found {names}"
        )
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
