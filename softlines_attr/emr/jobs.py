"""The jobs' command lines: what each ``jobs/<name>.py`` entry point takes (the contract with jobs/*.py).

A step's ``args`` are checked against :data:`JOBS` when the spec is loaded (:func:`checks.validate_step`);
the instance role's S3 grants come from the flags each job reads and writes (:mod:`iam`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
