"""What a staged EMR step runs on its node: S3 inputs copied to local disk, the command run, its output committed.

The model commands refine, evaluate and quantize read local folders (MXNet's record readers read local
files only) and write a local folder with no version pointer. As EMR steps they run through
:func:`run_step` (``jobs/refine.py`` and the like):

1. the step's arguments are parsed by the command's own parser (:mod:`steptypes`, as the spec check);
2. every ``s3://`` value the step reads is resolved to its committed version (:func:`resolve_committed`:
   the folder's ``_current.json``, or the nearest parent's, so ``s3://b/refine/bundle`` names
   ``s3://b/refine/runs/<run_id>/bundle``) and copied to the node's local disk;
3. every ``s3://`` value it writes becomes a local folder (a command that takes ``--run-id`` commits its
   output itself and is left to do so);
4. the command runs in this process (a GPU driver step gives it the GPU Spark assigned to the driver);
5. each local output folder is uploaded into ``<out>/runs/<run_id>/`` and committed with one
   ``_current.json`` write (:class:`softlines_attr.io.commit.StagedOutput`), its ``_summary.json`` holding
   what the command printed. A failure before that leaves the previous version current: rerunning the
   step is safe (the state machine retries it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from softlines_attr.emr.steptypes import (
    StepType,
    accepts,
    as_uri,
    for_script,
    uri_options,
    validate_step_args,
)

log = logging.getLogger(__name__)


def resolve_committed(uri: str) -> str:
    """The committed version ``uri`` names: its own pointer's, or the nearest parent's with the rest appended.

    Raises:
        CurrentVersionError: a broken pointer on the way.
    """
    from softlines_attr.io.commit import POINTER_FILE, read_current
    from softlines_attr.io.filesystem import filesystem_for

    fs, root = filesystem_for(uri)
    parts = root.rstrip("/").split("/")
    for cut in range(len(parts), 1, -1):  # the folder itself first, then each parent up to the bucket
        folder = "/".join(parts[:cut])
        if fs.get_file_info(f"{folder}/{POINTER_FILE}").type == pafs.FileType.File:
            current = read_current(uri_of(uri, folder), filesystem=fs)
            rest = "/".join(parts[cut:])
            return f"{current.uri.rstrip('/')}/{rest}" if rest else current.uri
    return uri


def uri_of(uri: str, path: str) -> str:
    """``path`` (a filesystem path of ``uri``'s filesystem) as a URI of the same scheme."""
    scheme, sep, _ = uri.partition("://")
    return f"{scheme}://{path}" if sep else path


def copy_to_local(uri: str, dest: Path) -> Path:
    """Copy the committed version of folder (or file) ``uri`` to ``dest``; returns ``dest``."""
    from softlines_attr.io.filesystem import filesystem_for

    source = resolve_committed(uri)
    fs, path = filesystem_for(source)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        from softlines_attr.emr.errors import EmrError

        raise EmrError(f"step input {uri}: expected a committed folder or file, found nothing at {source}")
    (dest if info.type == pafs.FileType.Directory else dest.parent).mkdir(parents=True, exist_ok=True)
    pafs.copy_files(path, str(dest), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    log.info("input %s: copied %s to %s", uri, source, dest)
    return dest


def commit_folder(local_dir: Path, out_uri: str, run_id: str, *, job: str, summary: dict[str, Any], keep: int) -> str:
    """Upload ``local_dir``'s entries into ``<out_uri>/runs/<run_id>/`` and commit them; returns the run's URI."""
    from softlines_attr.io.commit import StagedOutput
    from softlines_attr.io.filesystem import filesystem_for

    staged = StagedOutput(out_uri, run_id, job=job, keep_versions=keep)
    staged.prepare()
    try:
        local = pafs.LocalFileSystem()
        for entry in sorted(local_dir.iterdir()):
            hidden = entry.name.startswith(("_", "."))  # copied as is, not a table the commit checks
            target = f"{staged.run_dir}/{entry.name}" if hidden else staged.table_path(entry.name)
            _, target_path = filesystem_for(target)
            pafs.copy_files(str(entry), target_path, source_filesystem=local, destination_filesystem=staged.fs)
        return staged.commit(summary)
    except BaseException:
        staged.abort()
        raise


def _typed(ns: argparse.Namespace, dest: str, value: str) -> object:
    """``value`` with the type the parsed option had (a ``type=Path`` option stays a Path)."""
    return Path(value) if isinstance(getattr(ns, dest), Path) else value


def _pop_run_id(argv: Sequence[str]) -> tuple[str | None, list[str]]:
    """(``--run-id`` value, the rest): the run id the schedule passes to every step."""
    rest: list[str] = []
    run_id: str | None = None
    items = list(argv)
    while items:
        token = items.pop(0)
        if token == "--run-id" and items:
            run_id = items.pop(0)
        elif token.startswith("--run-id="):
            run_id = token.split("=", 1)[1]
        else:
            rest.append(token)
    return run_id, rest


def _driver_gpu() -> str | None:
    """The GPU Spark assigned to this driver (cluster mode, ``spark.driver.resource.gpu.amount``), or ``None``.

    Under spark-submit a SparkContext must exist in cluster mode anyway (YARN's application master
    waits for one); outside spark-submit (tests, a shell) there is none.
    """
    from softlines_attr.spark import under_spark_submit

    if not under_spark_submit():
        return None
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("softlines-attr-step").getOrCreate()
    gpu = spark.sparkContext.resources.get("gpu")
    return gpu.addresses[0] if gpu is not None and gpu.addresses else None


def _stop_session() -> None:
    """Stop the driver's SparkSession, if :func:`_driver_gpu` started one."""
    from softlines_attr.spark import under_spark_submit

    if under_spark_submit():
        from pyspark.sql import SparkSession

        active = SparkSession.getActiveSession()
        if active is not None:
            active.stop()


def give_gpu(stype: StepType, ns: argparse.Namespace, gpu: str) -> None:
    """Hand the driver's GPU to the command: training's ``--gpus`` or evaluate's ``--gpu``, unless the step named
    one (training flags are absent from the namespace until given: they only override the conf)."""
    if accepts(stype, "gpus"):
        if not getattr(ns, "gpus", None):
            ns.gpus = (int(gpu),)
    elif accepts(stype, "gpu") and getattr(ns, "gpu", None) is None:
        ns.gpu = int(gpu)


class _Tee(io.StringIO):
    """Stdout that is also kept: the step log shows the command's output as it comes, the summary its last line."""

    def __init__(self, out: io.TextIOBase | Any) -> None:
        super().__init__()
        self._out = out

    def write(self, text: str) -> int:
        self._out.write(text)
        return super().write(text)

    def flush(self) -> None:
        self._out.flush()


def _printed_json(text: str) -> Any:
    """The last line of what the command printed, as JSON (or the text when it is not JSON)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return text[-4000:]


def run_staged(stype: StepType, argv: Sequence[str], scratch: Path, *, gpu: str | None = None) -> dict[str, Any]:
    """Run one staged step (module docstring); returns ``{"run_id", "outputs", "printed"}``."""
    import importlib

    from softlines_attr.cli import COMMANDS
    from softlines_attr.commands.common import config_from_args
    from softlines_attr.io.tables import new_run_id

    own_run_id = accepts(stype, "run_id")
    run_id, argv = (None, list(argv)) if own_run_id else _pop_run_id(argv)
    ns = validate_step_args(stype, argv, step=stype.name)
    if own_run_id:
        run_id = ns.run_id
    run_id = run_id or new_run_id()
    reads_by_dest = {d: u for d, u in uri_options(ns).items() if d not in stype.writes}
    inputs: dict[str, str] = {}
    for dest, uris in reads_by_dest.items():
        if len(uris) != 1 or as_uri(getattr(ns, dest)) is None:
            continue  # a list option (score's --models) is not a staged command's; leave it as given
        name = [p for p in uris[0].split("/") if p][-1]  # the folder's own name: bundles are named after it
        local = copy_to_local(uris[0], scratch / "in" / dest / name)
        inputs[dest] = uris[0]
        setattr(ns, dest, _typed(ns, dest, str(local)))
    outputs: dict[str, str] = {}
    if not own_run_id:
        for dest in stype.writes:
            uri = as_uri(getattr(ns, dest, None) or "")
            if uri:
                outputs[dest] = uri
                setattr(ns, dest, _typed(ns, dest, str(scratch / "out" / dest)))
    if gpu is not None:
        give_gpu(stype, ns, gpu)
    module = importlib.import_module(f"softlines_attr.commands.{COMMANDS[stype.command]}")
    captured = _Tee(sys.stdout)
    with contextlib.redirect_stdout(captured):
        code = int(module.run(ns) or 0)
    if code != 0:
        from softlines_attr.emr.errors import EmrError

        raise EmrError(f"step {stype.name}: `softlines-attr {stype.command}` exited {code}; expected 0")
    printed = _printed_json(captured.getvalue())
    for dest in stype.carries:  # e.g. the bundle evaluate wrote its thresholds into
        if dest in inputs and "out" in outputs:
            shutil.copytree(Path(getattr(ns, dest)), scratch / "out" / "out" / "bundle")
    keep = config_from_args(ns).output.keep_versions
    committed: dict[str, str] = {}
    for dest, uri in outputs.items():
        summary = {"job": stype.command, "run_id": run_id, "inputs": inputs, "output": uri, "result": printed}
        committed[dest] = commit_folder(
            scratch / "out" / dest, uri, run_id, job=stype.command, summary=summary, keep=keep
        )
    return {"run_id": run_id, "outputs": committed, "printed": printed}


def scratch_root() -> Path:
    """Local scratch space: the YARN container's first local dir (the node's big disk), else the temp dir."""
    local_dirs = os.environ.get("LOCAL_DIRS", "")
    base = local_dirs.split(",")[0] if local_dirs else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="softlines-attr-step-", dir=base))


def run_step(script: str, argv: Sequence[str]) -> int:
    """The ``jobs/<name>.py`` entry point of a staged step: exit code 0, or 2 with the error on stderr."""
    from softlines_attr.errors import SoftlinesAttrError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stype = for_script(script)
    scratch = scratch_root()
    try:
        gpu = _driver_gpu() if stype.placement == "gpu_driver" else None
        result = run_staged(stype, argv, scratch, gpu=gpu)
    except SoftlinesAttrError as exc:
        print(f"softlines-attr {stype.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        _stop_session()
    print(json.dumps({"step": stype.name, "run_id": result["run_id"], "committed": result["outputs"]}))
    return 0
