"""Fault injection: a job killed at every step of its commit, local and S3 (moto), and a reader that always finds
one whole version.

This file is also the test-only entry point that installs fault hooks in a child process (fault
injection stays out of the production modules)::

    python tests/test_commit_faults.py kill-at K cli <softlines-attr args...>    # die before the K-th filesystem change
    python tests/test_commit_faults.py kill-at K stage OUT RUN_ID ROWS KEEP     # a no-Spark writer of two tables
    python tests/test_commit_faults.py versions OUT N KEEP PAUSE_S              # commit N versions in a row

``kill-at`` wraps the :class:`pyarrow.fs.FileSystem` that :mod:`softlines_attr.io.commit` uses in a
:class:`pyarrow.fs.PyFileSystem` that counts every change (create, write, move, delete) and calls
``os._exit`` before the K-th one: the process dies as under ``kill -9``, no ``finally`` runs.
In-process (no kill), :func:`snapshots` counts the same changes but copies the local folder OUT to
``SNAPS/k<K>/out`` before the K-th one (and its operation to ``SNAPS/k<K>/change.txt``), then makes
it: one run leaves the files a kill before each change would leave.

:func:`task_dies` (in-process, on the tests' shared ``local[2,2]`` session) swaps the shard or scoring
job's partition function for one whose first attempt at partition 0 kills its Python worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve()
KILLED = 17
TABLES = ("attributes", "wide")

_steps: dict = {"n": 0, "kill_at": 0, "snapshots": None}


class KillingHandler(pafs.FileSystemHandler):
    """Delegates to a real filesystem; the process dies before the ``kill_at``-th change (counted over every
    instance)."""

    def __init__(self, inner: pafs.FileSystem) -> None:
        self.inner = inner

    def _step(self, op: str, path: str) -> None:
        _steps["n"] += 1
        if _steps["snapshots"] is not None:
            out, snaps = _steps["snapshots"]
            target = snaps / f"k{_steps['n']:02d}"
            target.mkdir(parents=True)
            if out.exists():
                shutil.copytree(out, target / "out", symlinks=True)
            (target / "change.txt").write_text(f"{op} {path}\n")
        if _steps["n"] == _steps["kill_at"]:
            sys.stderr.write(f"fault: killed before change {_steps['n']}: {op} {path}\n")
            sys.stderr.flush()
            os._exit(KILLED)

    def get_type_name(self) -> str:
        return self.inner.type_name

    def normalize_path(self, path: str) -> str:
        return self.inner.normalize_path(path)

    def get_file_info(self, paths):
        return self.inner.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self.inner.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self._step("create_dir", path)
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self._step("delete_dir", path)
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self._step("delete_dir_contents", path)
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        self._step("delete_root_dir_contents", "/")
        self.inner.delete_dir_contents("/", accept_root_dir=True)

    def delete_file(self, path: str) -> None:
        self._step("delete_file", path)
        self.inner.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self._step("move", f"{src} -> {dest}")
        self.inner.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self._step("copy_file", f"{src} -> {dest}")
        self.inner.copy_file(src, dest)

    def open_input_stream(self, path: str):
        return self.inner.open_input_stream(path)

    def open_input_file(self, path: str):
        return self.inner.open_input_file(path)

    def open_output_stream(self, path: str, metadata):
        self._step("open_output_stream", path)
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata):
        self._step("open_append_stream", path)
        return self.inner.open_append_stream(path, metadata=metadata)


def install_kill(kill_at: int, snapshots: tuple[Path, Path] | None = None) -> None:
    """Make every filesystem :mod:`softlines_attr.io.commit` opens die before change ``kill_at`` (0: never).

    With ``snapshots`` (OUT, SNAPS), the local folder OUT is first copied to ``SNAPS/k<K>/out`` before every change K.
    """
    import softlines_attr.io.commit as commit

    real = commit.filesystem_for
    _steps["kill_at"] = kill_at
    _steps["snapshots"] = snapshots

    def killing_filesystem_for(uri: str):
        fs, path = real(uri)
        return pafs.PyFileSystem(KillingHandler(fs)), path

    commit.filesystem_for = killing_filesystem_for


@contextlib.contextmanager
def snapshots(out: Path, snaps: Path) -> Iterator[None]:
    """In this process, while the block runs: copy the local folder ``out`` to ``snaps/k<K>/out`` before every
    change K that :mod:`softlines_attr.io.commit` makes (never killing); the commit's filesystem is restored
    after."""
    import softlines_attr.io.commit as commit

    real, saved = commit.filesystem_for, dict(_steps)
    install_kill(0, snapshots=(out.resolve(), snaps.resolve()))
    _steps["n"] = 0
    try:
        yield
    finally:
        commit.filesystem_for = real
        _steps.clear()
        _steps.update(saved)


def _dying_shard_partition(spec, partition, rows):
    """The shard task, except that partition 0's first attempt dies two thirds of the way (after a rolled-over
    shard)."""
    from pyspark import TaskContext

    from softlines_attr.shard.task import shard_partition

    items = list(rows)
    ctx = TaskContext.get()
    first = ctx is not None and ctx.attemptNumber() == 0 and partition == 0
    fail_at = max(1, len(items) * 2 // 3) if first else -1
    done = 0
    for kind, value in shard_partition(spec, partition, iter(items)):
        yield kind, value
        if kind == "index":
            done += 1
            if done == fail_at:
                os._exit(KILLED)


def _dying_score_partition(spec, batches):
    """The scoring task, except that partition 0's first attempt dies after its first output batch."""
    from pyspark import TaskContext

    from softlines_attr.score.task import score_partition

    ctx = TaskContext.get()
    first = ctx is not None and ctx.attemptNumber() == 0 and ctx.partitionId() == 0
    for batch in score_partition(spec, batches):
        yield batch
        if first:
            os._exit(KILLED)


@contextlib.contextmanager
def task_dies(stage: str) -> Iterator[None]:
    """While the block runs, the ``stage`` job's (``shard`` or ``score``) partition 0 dies on its first attempt.

    The job module's partition function is swapped for the dying one (pickled by value: the Python
    workers cannot import this file) and restored after; the session must allow a retry (``local[N,2]``).
    """
    from pyspark import cloudpickle

    import softlines_attr.score.job as score_job
    import softlines_attr.shard.job as shard_job

    module, name, dying = {
        "shard": (shard_job, "shard_partition", _dying_shard_partition),
        "score": (score_job, "score_partition", _dying_score_partition),
    }[stage]
    real = getattr(module, name)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    setattr(module, name, dying)
    try:
        yield
    finally:
        setattr(module, name, real)
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def write_version(out: str, run_id: str, rows: int, keep: int) -> None:
    """Commit one version of two small Parquet tables through :class:`StagedOutput` (every write through the
    commit's filesystem)."""
    import softlines_attr.io.commit as commit

    staged = commit.StagedOutput(out, run_id, job="score", keep_versions=keep)
    staged.prepare()
    for name in TABLES:
        fs, path = commit.filesystem_for(staged.table_path(name))
        fs.create_dir(path, recursive=True)
        table = pa.table({"run_id": [run_id] * rows, "i": list(range(rows))})
        pq.write_table(table, f"{path}/part-00000.parquet", filesystem=fs)
    staged.commit({"job": "score", "run_id": run_id, "rows": {name: rows for name in TABLES}})


def read_whole_version(out: str) -> str:
    """What the indexer does: follow the pointer, read every table; asserts the version is whole; returns its run id."""
    from softlines_attr.io.commit import read_current
    from softlines_attr.io.filesystem import filesystem_for
    from softlines_attr.io.storage import join_uri

    current = read_current(out)
    assert current.summary["run_id"] == current.run_id
    for name in TABLES:
        fs, path = filesystem_for(join_uri(current.uri, name))
        table = pq.read_table(path, filesystem=fs)
        assert table.num_rows == current.summary["rows"][name], (name, table.num_rows, current.summary)
        assert set(table.column("run_id").to_pylist()) == {current.run_id}
    return current.run_id


def _main(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE.parent))
    mode, rest = argv[0], argv[1:]
    if mode == "kill-at":
        install_kill(int(rest[0]))
        kind, rest = rest[1], rest[2:]
        if kind == "stage":
            write_version(rest[0], rest[1], int(rest[2]), int(rest[3]))
            return 0
        from softlines_attr.cli import main

        return main(rest)
    if mode == "versions":
        out, n, keep, pause = rest[0], int(rest[1]), int(rest[2]), float(rest[3])
        for i in range(n):
            write_version(out, f"v{i + 2:02d}", 2 + i, keep)
            time.sleep(pause)
        return 0
    raise SystemExit(f"unknown mode {mode!r}")


def run_hooked(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    """Run this file as a child process with ``args`` (the repo's venv interpreter, Spark workers on it too; a
    Spark child with the tests' JIT options and SQL settings)."""
    from conftest import child_spark_env  # here: a child that runs this file does not import the fixtures

    return subprocess.run(
        [sys.executable, str(HERE), *args],
        cwd=REPO,
        env=child_spark_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# --------------------------------------------------------------------------------------------- tests


@pytest.fixture(params=["local", "s3"])
def out_uri(request, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "out")
    import boto3

    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"commit-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/scores"


def _run_folders(out: str) -> list[str]:
    from softlines_attr.io.commit import RUNS_DIR
    from softlines_attr.io.filesystem import filesystem_for

    fs, root = filesystem_for(out)
    info = fs.get_file_info(f"{root}/{RUNS_DIR}")
    if info.type != pafs.FileType.Directory:
        return []
    return sorted(
        i.base_name
        for i in fs.get_file_info(pafs.FileSelector(f"{root}/{RUNS_DIR}"))
        if i.type == pafs.FileType.Directory
    )


def _top_level(out: str) -> list[str]:
    from softlines_attr.io.filesystem import filesystem_for

    fs, root = filesystem_for(out)
    return sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector(root)))


def test_killed_at_every_commit_step_a_reader_finds_one_whole_version(out_uri: str) -> None:
    """For each K: v1 is committed; a run v2 is killed before its K-th filesystem change; then a run v3 follows.

    After every kill the reader reads v1 whole or v2 whole, never a mix or nothing; v3 removes what
    the dead run left and commits (keep_versions = 1: only v3 remains). K goes up until v2 is not
    killed any more, so every step of prepare, table writes, summary, pointer and pruning is hit.
    """
    seen: list[tuple[int, str, list[str]]] = []
    for k in range(1, 60):
        out = f"{out_uri}/k{k:02d}"
        write_version(out, "v1", 3, 1)
        proc = run_hooked(["kill-at", str(k), "stage", out, "v2", "5", "1"], timeout=120)
        if proc.returncode == 0:
            assert read_whole_version(out) == "v2" and _run_folders(out) == ["v2"]
            break
        assert proc.returncode == KILLED and "fault: killed before change" in proc.stderr, proc.stderr[-3000:]
        seen.append((k, read_whole_version(out), _run_folders(out)))
        write_version(out, "v3", 4, 1)  # the next run
        assert read_whole_version(out) == "v3" and _run_folders(out) == ["v3"], (k, _run_folders(out))
        assert _top_level(out) == ["_current.json", "runs"], (k, _top_level(out))  # nothing else left behind
    else:
        pytest.fail("the writer never finished")
    current = [c for _, c, _ in seen]
    assert len(seen) >= 8, seen  # prepare (folder, probe), two tables, summary, pointer, pruning
    assert current[0] == "v1" and current[-1] == "v2" and current == sorted(current), (
        seen
    )  # v1 until the pointer write, v2 after
    assert any(c == "v1" and "v2" in runs for _, c, runs in seen)  # a dead run's folder, invisible to the reader
    assert any(c == "v2" and "v1" in runs for _, c, runs in seen)  # killed after the commit point, before pruning


def test_a_reader_during_many_commits_always_reads_one_whole_version(out_uri: str) -> None:
    """A writer process commits eight versions in a row while this process reads the current one in a loop."""
    write_version(out_uri, "v01", 1, 3)
    writer = subprocess.Popen(
        [sys.executable, str(HERE), "versions", out_uri, "8", "3", "0.15"],
        cwd=REPO,
        env=dict(os.environ),
        stderr=subprocess.PIPE,
        text=True,
    )
    reads: list[str] = []
    errors: list[BaseException] = []

    def reader() -> None:
        while writer.poll() is None:
            try:
                reads.append(read_whole_version(out_uri))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    _, err = writer.communicate(timeout=240)
    thread.join()
    assert writer.returncode == 0, err[-3000:]
    assert not errors, errors
    assert read_whole_version(out_uri) == "v09" and _run_folders(out_uri) == ["v07", "v08", "v09"]
    assert len(set(reads)) >= 3 and reads == sorted(reads), reads  # several versions seen, in commit order


class ReplacingHandler(KillingHandler):
    """Replaces the object just after each of the first ``times`` opens for reading, as a commit racing a reader
    would: the stream has its size from a HEAD, and its GET comes after the replacement."""

    def __init__(self, inner: pafs.FileSystem, bodies: list[bytes]) -> None:
        super().__init__(inner)
        self.bodies = bodies

    def open_input_stream(self, path: str):
        stream = self.inner.open_input_stream(path)
        if self.bodies:
            with self.inner.open_output_stream(path) as fh:
                fh.write(self.bodies.pop(0))
        return stream


def test_an_s3_object_replaced_during_its_read_is_read_again_whole(s3_endpoint: str, tmp_path: Path) -> None:
    """On S3 a read is a HEAD and then a ranged GET: a pointer replaced in between must not read as a prefix of the
    new one (the race behind a truncated ``_current.json`` seen by a reader during many commits)."""
    import boto3

    from softlines_attr.io.errors import OutputLocationError
    from softlines_attr.io.filesystem import READ_ATTEMPTS, filesystem_for, read_bytes

    bucket = f"race-{tmp_path.name.lower().replace('_', '-')[-40:]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    inner, root = filesystem_for(f"s3://{bucket}/out")
    with inner.open_output_stream(f"{root}/_current.json") as fh:
        fh.write(b'{"run_id": "v1"}')
    longer = b'{"run_id": "v2", "job": "score"}'
    racing = pafs.PyFileSystem(ReplacingHandler(inner, [longer, longer + b" "]))
    assert read_bytes(racing, f"{root}/_current.json") == longer + b" "  # the first two reads raced; the third is whole
    assert read_bytes(racing, f"{root}/none.json") is None

    always = pafs.PyFileSystem(ReplacingHandler(inner, [b"{}" * (n + 1) for n in range(READ_ATTEMPTS)]))
    with pytest.raises(
        OutputLocationError, match=f"hold still for one read, found it replaced during each of {READ_ATTEMPTS}"
    ):
        read_bytes(always, f"{root}/_current.json")


def test_pointer_checks_and_a_version_folder_is_never_an_out(tmp_path: Path) -> None:
    """A pointer whose run summary changed, or that names an unsafe path, is refused; a run folder cannot be an
    --out."""
    from softlines_attr.io.commit import CurrentVersionError, OutputLocationError, StagedOutput, resolve_current

    out = str(tmp_path / "out")
    write_version(out, "v1", 2, 3)
    assert resolve_current(out) == f"{out}/runs/v1" and resolve_current(f"{out}/runs/v1") == f"{out}/runs/v1"
    with pytest.raises(OutputLocationError, match="found a version folder of one"):
        StagedOutput(f"{out}/runs/v1", "x1", job="score").prepare()
    summary = tmp_path / "out" / "runs" / "v1" / "_summary.json"
    summary.write_text(summary.read_text().replace('"v1"', '"v1" '))
    with pytest.raises(
        CurrentVersionError, match=r"runs/v1/_summary.json: expected sha256 [0-9a-f]{64} \(from _current.json\), found"
    ):
        resolve_current(out)
    pointer = tmp_path / "out" / "_current.json"
    pointer.write_text(json.dumps({**json.loads(pointer.read_text()), "run_id": "..", "path": "runs/.."}))
    with pytest.raises(CurrentVersionError, match="run id '..': expected"):
        resolve_current(out)
    pointer.write_text("{not json")
    with pytest.raises(CurrentVersionError, match="expected a JSON object, found unreadable JSON"):
        resolve_current(out)


def test_keep_versions_is_a_strictly_parsed_config_key(tmp_path: Path) -> None:
    from softlines_attr.config import load_config
    from softlines_attr.errors import ConfigError

    assert load_config().output.keep_versions == 3
    over = tmp_path / "over.toml"
    over.write_text("[output]\nkeep_versions = 5\n")
    assert load_config(conf_path=over).output.keep_versions == 5
    over.write_text("[output]\nkeep_versions = 0\n")
    with pytest.raises(
        ConfigError, match=r"key 'output.keep_versions': expected >= 1 \(the current version counts\), found 0"
    ):
        load_config(conf_path=over)
    over.write_text('[output]\nkeep_versions = "3"\n')
    with pytest.raises(ConfigError, match="output.keep_versions"):
        load_config(conf_path=over)
    over.write_text("[output]\nkeep = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'output.keep'"):
        load_config(conf_path=over)


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
