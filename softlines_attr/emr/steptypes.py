"""The step types: which command each EMR step runs, where, and its arguments parsed by the command's own parser.

A step's ``args`` are the arguments of a ``softlines-attr`` command and nothing else: they are parsed
with that command's own argument definitions (its ``add_arguments`` and ``parents``, the same the CLI
and the ``jobs/*.py`` entry points use), so the spec cannot drift from the commands. A wrong argument
is an :class:`~softlines_attr.emr.errors.EmrSpecError` naming the step and argparse's own message.

What IAM needs is derived from the same parse: every option whose value is an ``s3://`` URI (or a
path under the Mountpoint root :data:`MOUNT_ROOT`) is read, except the one option the step type
writes (``--out``; ``promote`` writes its registry, ``--models``), which is written (and read).

Placement (docs/EMR.md, "Where each step runs"):

* ``cpu``: on the master node, ``spark-submit --deploy-mode client --master local[*]`` with no GPU
  request (labels, promote, audit, quantize: no GPU work).
* ``gpu_spark``: a Spark job on the GPU nodes, one executor and one task per GPU (shard, score).
* ``gpu_barrier``: one barrier stage of ``--num-workers`` tasks, one per GPU node (distributed training).
* ``gpu_driver``: one process holding one GPU: the driver in cluster mode with
  ``spark.driver.resource.gpu.amount = 1`` (refine, evaluate); no executors.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from softlines_attr.emr.errors import EmrSpecError

log = logging.getLogger(__name__)

Placement = Literal["cpu", "gpu_spark", "gpu_barrier", "gpu_driver"]

#: Where the bootstrap mounts S3 buckets read-only with Mountpoint (``/mnt/s3/<bucket>/<key>``).
MOUNT_ROOT = "/mnt/s3"
#: Options a step's ``args`` may not hold: the spec sets them (conf/taxonomy keys, spark profile, the run id).
MANAGED_OPTIONS: tuple[str, ...] = ("conf", "taxonomy", "spark_profile", "master", "run_id", "log_level")


@dataclass(frozen=True)
class StepType:
    """One kind of EMR step.

    Attributes:
        name: The spec's ``type`` value.
        command: The ``softlines-attr`` subcommand whose parser checks the step's arguments.
        script: The entry point, relative to the release root.
        placement: Where it runs (module docstring).
        writes: The options whose values the step writes (the rest of its S3 values are read).
        fixed_args: Arguments the entry point itself adds before the step's (``train_dist.py``'s
            ``--launch spark --kv-store dist_sync``); a step may not give these options.
        carries: Read options whose local copy is committed with the output, as ``bundle/`` (evaluate's
            ``--model``: ``--write-thresholds`` writes the abstain thresholds into it, and promote takes the
            evaluated bundle from evaluate's output).
        summary: Where the step's summary is, relative to the written URI (``{run_id}`` = the run id),
            or ``""`` for none.
        retries: How many times the state machine retries the step after it failed (each job is
            idempotent: a failed run never commits, and the rerun writes a fresh version).
        check: An extra check of the parsed arguments (the command's own validation), raising a
            SoftlinesAttrError; ``None`` for none.
    """

    name: str
    command: str
    script: str
    placement: Placement
    writes: tuple[str, ...] = ("out",)
    fixed_args: tuple[str, ...] = ()
    carries: tuple[str, ...] = ()
    summary: str = "runs/{run_id}/_summary.json"
    retries: int = 1
    check: Callable[[argparse.Namespace], None] | None = field(default=None, compare=False)

    @property
    def gpu(self) -> bool:
        """Whether the step needs GPU nodes."""
        return self.placement != "cpu"


def _check_shard(ns: argparse.Namespace) -> None:
    from softlines_attr.commands.shard import shard_job

    shard_job(ns)  # the command's own check: base (--vocab-size) or refine (--tags with --attribute)


STEP_TYPES: dict[str, StepType] = {
    t.name: t
    for t in (
        StepType("labels", "labels", "jobs/build_labels.py", "cpu"),
        StepType("shard", "shard", "jobs/shard_images.py", "gpu_spark", check=_check_shard),
        StepType(
            "train_dist",
            "train",
            "jobs/train_dist.py",
            "gpu_barrier",
            fixed_args=("--launch", "spark", "--kv-store", "dist_sync"),
            summary="",
        ),
        StepType("refine", "refine", "jobs/refine.py", "gpu_driver"),
        StepType("evaluate", "evaluate", "jobs/evaluate.py", "gpu_driver", carries=("model",)),
        StepType("quantize", "quantize", "jobs/quantize.py", "cpu"),
        StepType(
            "promote",
            "promote",
            "jobs/promote.py",
            "cpu",
            writes=("models",),  # its registry: the command commits the pointer itself
            summary="decisions/{run_id}/decision.json",
        ),
        StepType("score", "score", "jobs/score.py", "gpu_spark"),
        StepType("audit", "audit", "jobs/audit.py", "cpu"),
    )
}


def step_type(name: str) -> StepType:
    """The step type called ``name``.

    Raises:
        EmrSpecError: naming the types there are.
    """
    try:
        return STEP_TYPES[name]
    except KeyError:
        raise EmrSpecError(f"no step type {name!r}; expected one of {sorted(STEP_TYPES)}") from None


def for_script(script: str) -> StepType:
    """The step type of entry point ``jobs/<name>.py`` (what a ``jobs/*.py`` file runs as)."""
    for stype in STEP_TYPES.values():
        if Path(stype.script).name == Path(script).name:
            return stype
    raise EmrSpecError(f"no step type runs {script!r}; expected one of {[t.script for t in STEP_TYPES.values()]}")


class _ArgsRefused(Exception):
    """argparse's error, raised instead of printing usage and exiting."""


class _StepArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors raise (a spec check must not print usage and exit)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise _ArgsRefused(message)

    def exit(self, status: int = 0, message: str | None = None) -> None:  # type: ignore[override]
        raise _ArgsRefused(message or "--help / --version is not a step argument")


@functools.cache
def command_parser(command: str) -> argparse.ArgumentParser:
    """The parser of ``softlines-attr <command>``, built from the command module's own definitions.

    The same ``parents()`` and ``add_arguments()`` :func:`softlines_attr.cli.build_parser` uses, plus its
    ``--log-level``; its errors raise instead of exiting. Built once per command (parsing does not change it).
    """
    from softlines_attr.cli import COMMANDS

    module = importlib.import_module(f"softlines_attr.commands.{COMMANDS[command]}")
    parents = module.parents() if hasattr(module, "parents") else []
    parser = _StepArgumentParser(prog=f"softlines-attr {command}", parents=parents, add_help=False)
    module.add_arguments(parser)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def parse_command_args(stype: StepType, argv: Sequence[str], *, step: str) -> argparse.Namespace:
    """Parse a step's arguments (after the type's fixed ones) with its command's parser.

    Raises:
        EmrSpecError: naming the step, the command and argparse's message.
    """
    parser = command_parser(stype.command)
    try:
        return parser.parse_args([*stype.fixed_args, *argv])
    except _ArgsRefused as exc:
        raise EmrSpecError(
            f"step {step!r} (type {stype.name}): expected the arguments of `softlines-attr {stype.command}`, "
            f"found {list(argv)}: {exc}"
        ) from None


def _fixed_dests(parser: argparse.ArgumentParser, fixed: Sequence[str]) -> set[str]:
    """The dests of the options the step type's fixed arguments name."""
    return {a.dest for a in parser._actions if set(a.option_strings) & set(fixed)}  # no public lookup in argparse


def validate_step_args(stype: StepType, argv: Sequence[str], *, step: str) -> argparse.Namespace:
    """Parse a step's arguments, refuse the options the spec sets, run the type's own check.

    Returns:
        The parsed namespace.

    Raises:
        EmrSpecError: naming the step and what was wrong.
    """
    ns = parse_command_args(stype, argv, step=step)
    parser = command_parser(stype.command)
    fixed = _fixed_dests(parser, stype.fixed_args)
    alone = parser.parse_args(argv) if fixed else ns  # without the fixed arguments: what the step itself set
    for dest in sorted(set(MANAGED_OPTIONS) | fixed):
        missing = object()
        if getattr(alone, dest, missing) not in (missing, parser.get_default(dest)):
            flag = "--" + dest.replace("_", "-")
            raise EmrSpecError(
                f"step {step!r} (type {stype.name}): expected no {flag} in args: "
                + (
                    f"the step type sets it ({' '.join(stype.fixed_args)})"
                    if dest in fixed
                    else "the spec sets it (the step's conf/taxonomy keys, spark_profile, the schedule's run id)"
                )
            )
    if stype.check is not None:
        from softlines_attr.errors import SoftlinesAttrError

        try:
            stype.check(ns)
        except SoftlinesAttrError as exc:
            raise EmrSpecError(f"step {step!r} (type {stype.name}): {exc}") from None
    return ns


def accepts(stype: StepType, dest: str) -> bool:
    """Whether the step type's command takes the option ``dest`` (``taxonomy``, ``spark_profile``, ``run_id``)."""
    return any(a.dest == dest for a in command_parser(stype.command)._actions)


def staged(stype: StepType) -> bool:
    """Whether the step runs through :mod:`softlines_attr.emr.node` (its S3 inputs copied to local disk, its
    output committed as a version): the commands that neither run Spark nor commit a versioned output
    themselves (no ``--spark-profile``, no ``--run-id``) read and write local folders only."""
    return not accepts(stype, "spark_profile") and not accepts(stype, "run_id")


_S3_IN_PATH = re.compile(r"^s3:/(?!/)")  # a type=Path option turns s3://b/k into s3:/b/k


#: In a step's arguments, stands for the run id (the schedule's execution name; one per ``emr launch``).
RUN_ID_PLACEHOLDER = "{run_id}"


def as_uri(value: object) -> str | None:
    """The S3 URI a parsed value names (``s3://...``, or a path under :data:`MOUNT_ROOT`), else ``None``.

    A value holding :data:`RUN_ID_PLACEHOLDER` names everything under the prefix before it.
    """
    text = _S3_IN_PATH.sub("s3://", str(value)).split(RUN_ID_PLACEHOLDER)[0]
    if text.startswith("s3://"):
        return text
    if text.startswith(MOUNT_ROOT + "/"):
        return "s3://" + text[len(MOUNT_ROOT) + 1 :]
    return None


def uri_options(ns: argparse.Namespace) -> dict[str, list[str]]:
    """Every parsed option holding S3 URIs (or mounted paths), by dest, in the order given."""
    found: dict[str, list[str]] = {}
    for dest, value in vars(ns).items():
        values = value if isinstance(value, list | tuple) else [value]
        uris = [u for u in (as_uri(v) for v in values if v is not None) if u]
        if uris:
            found[dest] = uris
    return found


def step_reads_writes(stype: StepType, ns: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(URIs the step reads, URIs it writes), from its parsed arguments: the type's written options, the rest read."""
    reads: list[str] = []
    writes: list[str] = []
    for dest, uris in uri_options(ns).items():
        (writes if dest in stype.writes else reads).extend(uris)
    return reads, writes


def written_uri(stype: StepType, ns: argparse.Namespace) -> str | None:
    """The first URI the step writes (where its summary is), or ``None``."""
    _, writes = step_reads_writes(stype, ns)
    return writes[0] if writes else None
