"""Versioned outputs: immutable run folders and one pointer, the same code for local paths and S3.

Layout of a job's ``--out`` (``<out>`` is a local folder or an ``s3://bucket/prefix``)::

    <out>/_current.json              the pointer: which run is the current version (written last)
    <out>/runs/<run_id>/<table>/     every table and folder of one run, never changed after its commit
    <out>/runs/<run_id>/_summary.json   that run's summary (the pointer holds its sha256)

A run writes everything into its own ``runs/<run_id>/`` (invisible: no pointer names it), writes its
``_summary.json`` there, then replaces ``_current.json`` in one atomic step (local: a temporary file
and ``os.replace``; S3: one PUT, an object appears whole or not at all). At every instant the pointer
names one complete run, so a reader that follows it (:func:`resolve_current`) always reads one whole
version: the previous one until the pointer is replaced, the new one after. Nothing is renamed or
copied at commit time, so the commit costs the same for a 100-row table and for 10 GB of shards.

Old versions are kept to ``output.keep_versions`` (the pointer lists them, newest first); any other
run folder (a failed or killed run's) is deleted by the next run's :meth:`StagedOutput.prepare`, and
the versions past the count after each commit. One writer per ``--out`` at a time.

A folder without ``_current.json`` (a run folder itself, an older flat layout, a folder written by
hand) is read as it is: :func:`resolve_current` returns it unchanged.

All file operations go through one :class:`pyarrow.fs.FileSystem` (``LocalFileSystem`` or
``S3FileSystem``, see :func:`softlines_attr.io.filesystem.filesystem_for`); tests wrap it to kill the
process at each step. The errors are :mod:`softlines_attr.io.errors`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from softlines_attr.errors import OutputCommitError
from softlines_attr.io.errors import CurrentVersionError, OutputLocationError, RunIdError
from softlines_attr.io.filesystem import delete_path, filesystem_for, list_dirs, normalize_out, read_bytes, write_atomic
from softlines_attr.io.storage import join_uri

log = logging.getLogger(__name__)

POINTER_FILE = "_current.json"
RUNS_DIR = "runs"
SUMMARY_FILE = "_summary.json"
LEGACY_STAGING_DIR = "_staging"
POINTER_FORMAT = 1
#: A run id: a letter or digit first, then letters, digits, ``.``, ``_``, ``-`` (at most 128 characters).
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PROBE = "_write_probe"


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a safe folder name.

    Raises:
        RunIdError: for ``..``, slashes, empty or over-long ids and other characters.
    """
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.fullmatch(run_id):
        raise RunIdError(
            f"run id {run_id!r}: expected 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return run_id


@dataclass(frozen=True)
class CurrentVersion:
    """The version a reader of ``out`` sees.

    Attributes:
        out: The output folder asked about.
        uri: Where the current version's tables are: ``<out>/runs/<run_id>``, or ``out`` itself when
            it has no pointer (a run folder, an older flat layout).
        run_id: The current run's id (None when unknown).
        job: The job that wrote it (``labels``, ``shard``, ``score``; None when unknown).
        summary: Its ``_summary.json`` ({} when there is none).
        pointer: The pointer's contents ({} without a pointer).
    """

    out: str
    uri: str
    run_id: str | None
    job: str | None
    summary: dict = field(default_factory=dict)
    pointer: dict = field(default_factory=dict)


def summary_job(summary: dict) -> str | None:
    """The job a summary says wrote it (``job``; the label job's older summaries say ``stage``)."""
    job = summary.get("job", summary.get("stage"))
    return str(job) if job is not None else None


def _parse_json(data: bytes, what: str) -> dict:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CurrentVersionError(f"{what}: expected a JSON object, found unreadable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise CurrentVersionError(f"{what}: expected a JSON object, found {type(doc).__name__}")
    return doc


def read_current(uri: str, *, filesystem: pafs.FileSystem | None = None) -> CurrentVersion:
    """Follow ``<uri>/_current.json`` to the current version and check it is whole.

    Args:
        uri: A job's output folder (local or s3://).
        filesystem: The filesystem to use (default: :func:`filesystem_for`).

    Returns:
        The current version; without a pointer, ``uri`` itself with its ``_summary.json`` if any.

    Raises:
        CurrentVersionError: a pointer that is not valid JSON, names an unsafe path, or a run whose
            ``_summary.json`` is missing or does not match the pointer's sha256.
    """
    fs, root = (filesystem, filesystem_for(uri)[1]) if filesystem is not None else filesystem_for(uri)
    pointer_path = f"{root}/{POINTER_FILE}"
    raw = read_bytes(fs, pointer_path)
    if raw is None:
        summary_raw = read_bytes(fs, f"{root}/{SUMMARY_FILE}")
        summary = _parse_json(summary_raw, f"{uri}/{SUMMARY_FILE}") if summary_raw is not None else {}
        run_id = summary.get("run_id")
        return CurrentVersion(
            out=uri,
            uri=uri,
            run_id=str(run_id) if run_id is not None else None,
            job=summary_job(summary),
            summary=summary,
        )
    pointer = _parse_json(raw, f"{uri}/{POINTER_FILE}")
    run_id = pointer.get("run_id")
    try:
        validate_run_id(run_id)
    except RunIdError as exc:
        raise CurrentVersionError(f"{uri}/{POINTER_FILE}: {exc}") from None
    if pointer.get("path") != f"{RUNS_DIR}/{run_id}":
        raise CurrentVersionError(
            f"{uri}/{POINTER_FILE}: expected path {RUNS_DIR}/{run_id!s}, found {pointer.get('path')!r}"
        )
    summary_raw = read_bytes(fs, f"{root}/{RUNS_DIR}/{run_id}/{SUMMARY_FILE}")
    if summary_raw is None:
        raise CurrentVersionError(
            f"{uri}/{POINTER_FILE} names run {run_id}, but {RUNS_DIR}/{run_id}/{SUMMARY_FILE} does not exist"
        )
    sha = hashlib.sha256(summary_raw).hexdigest()
    if sha != pointer.get("summary_sha256"):
        raise CurrentVersionError(
            f"{uri}/{RUNS_DIR}/{run_id}/{SUMMARY_FILE}: expected sha256 {pointer.get('summary_sha256')} "
            f"(from {POINTER_FILE}), found {sha}"
        )
    summary = _parse_json(summary_raw, f"{uri}/{RUNS_DIR}/{run_id}/{SUMMARY_FILE}")
    return CurrentVersion(
        out=uri,
        uri=join_uri(uri, RUNS_DIR, run_id),
        run_id=run_id,
        job=pointer.get("job"),
        summary=summary,
        pointer=pointer,
    )


def resolve_current(uri: str, *, filesystem: pafs.FileSystem | None = None) -> str:
    """Where the current version of output ``uri`` is (the one function every reader calls).

    ``<uri>/runs/<run_id>`` as named by ``<uri>/_current.json``, or ``uri`` itself when it holds no
    pointer. See :func:`read_current` for the checks and errors.
    """
    return read_current(uri, filesystem=filesystem).uri


class StagedOutput:
    """One run's output: written into ``<out>/runs/<run_id>/``, made current by one pointer write.

    Usage::

        staged = StagedOutput(out_dir, run_id, job="score", keep_versions=conf.output.keep_versions)
        staged.prepare()                       # before the work: refuses a bad --out, cleans dead runs
        df.write.parquet(staged.table_path("attributes"))
        staged.commit(summary)                 # writes runs/<run_id>/_summary.json, then _current.json

    Args:
        out_dir: The job's ``--out`` (local path or s3://).
        run_id: This run's id (:func:`validate_run_id`).
        job: The job writing (``labels``, ``shard``, ``score``); an ``--out`` holding another job's
            output is refused.
        keep_versions: Committed versions to keep, the new one included (>= 1).
        filesystem: The filesystem (default: :func:`filesystem_for` of ``out_dir``).

    Raises:
        RunIdError: an unsafe run id.
    """

    def __init__(
        self, out_dir: str, run_id: str, *, job: str, keep_versions: int = 3, filesystem: pafs.FileSystem | None = None
    ) -> None:
        self.run_id = validate_run_id(run_id)
        if keep_versions < 1:
            raise ValueError(f"keep_versions: expected >= 1, found {keep_versions}")
        self.out_dir = normalize_out(out_dir)
        self.job = job
        self.keep_versions = keep_versions
        fs, root = filesystem_for(self.out_dir)
        self.fs = filesystem if filesystem is not None else fs
        self._root = root
        self.run_dir = join_uri(self.out_dir, RUNS_DIR, run_id)
        self._run_path = f"{root}/{RUNS_DIR}/{run_id}"
        self._tables: list[str] = []
        self._prepared = False
        self._committed = False
        self._created_root = False

    # ---------------------------------------------------------------- before the work

    def prepare(self) -> CurrentVersion:
        """Check ``--out`` can take this run, clean dead runs' folders, create the run folder.

        Returns:
            The version current before this run.

        Raises:
            OutputLocationError: ``--out`` is a file, is not writable, or holds another job's output;
                or this run id is already a committed version.
            CurrentVersionError: the existing pointer is broken.
        """
        info = self.fs.get_file_info(self._root)
        self._created_root = info.type == pafs.FileType.NotFound
        if info.type == pafs.FileType.File:
            raise OutputLocationError(f"--out {self.out_dir}: expected a folder (or nothing), found a file")
        parent, _, _ = self._root.rpartition("/")
        grandparent, _, parent_name = parent.rpartition("/")
        if (
            parent_name == RUNS_DIR
            and self.fs.get_file_info(f"{grandparent}/{POINTER_FILE}").type == pafs.FileType.File
        ):
            raise OutputLocationError(
                f"--out {self.out_dir}: expected a job's output folder, found a version folder of one "
                "(versions are never changed); choose another --out"
            )
        current = read_current(self.out_dir, filesystem=self.fs)
        if current.job is not None and current.job != self.job:
            raise OutputLocationError(
                f"--out {self.out_dir}: expected an empty folder or a {self.job} job's output, found the output of the "
                f"{current.job} job (run {current.run_id}); choose another --out"
            )
        kept = self._kept(current)
        if self.run_id in kept:
            raise OutputLocationError(
                f"--out {self.out_dir}: run {self.run_id} is already a committed version; expected a new run id"
            )
        self._clean(kept)
        self._probe()
        self._prepared = True
        return current

    def _kept(self, current: CurrentVersion) -> list[str]:
        """The committed run ids the pointer keeps, newest first."""
        if not current.pointer or not current.run_id:
            return []
        history = [r for r in current.pointer.get("history", []) if isinstance(r, str) and RUN_ID_PATTERN.fullmatch(r)]
        return [current.run_id, *[r for r in history if r != current.run_id]]

    def _clean(self, kept: list[str]) -> None:
        """Delete run folders no pointer keeps (failed or killed runs), and an older layout's staging."""
        for name in list_dirs(self.fs, f"{self._root}/{RUNS_DIR}"):
            if name not in kept:
                log.warning("removing %s/%s/%s: a run that never committed", self.out_dir, RUNS_DIR, name)
                self.fs.delete_dir(f"{self._root}/{RUNS_DIR}/{name}")
        delete_path(self.fs, f"{self._root}/{LEGACY_STAGING_DIR}")
        if (
            self.fs.get_file_info(self._root).type == pafs.FileType.Directory
        ):  # a pointer's temporary file left by a killed commit
            for info in self.fs.get_file_info(pafs.FileSelector(self._root)):
                if info.type == pafs.FileType.File and info.base_name.startswith(f".{POINTER_FILE}.tmp-"):
                    self.fs.delete_file(info.path)

    def _probe(self) -> None:
        """Create the run folder, write and delete one small file in it: a read-only ``--out`` fails here, early."""
        probe = f"{self._run_path}/{_PROBE}"
        try:
            self.fs.create_dir(self._run_path, recursive=True)
            with self.fs.open_output_stream(probe) as fh:
                fh.write(b"probe\n")
            self.fs.delete_file(probe)
        except OSError as exc:
            raise OutputLocationError(
                f"--out {self.out_dir}: expected a writable folder, found it cannot be written ({exc})"
            ) from None

    # ---------------------------------------------------------------- the work

    def table_path(self, name: str) -> str:
        """Where to write table (or folder) ``name`` for this run; registers it for the commit's check."""
        if "/" in name or name.startswith(("_", ".")) or not name:
            raise ValueError(f"table name {name!r}: expected a plain name not starting with '_' or '.'")
        if name not in self._tables:
            self._tables.append(name)
        return join_uri(self.run_dir, name)

    def data_files(self, name: str) -> list[str]:
        """The data files of staged table ``name``, relative to it (``_`` and ``.`` names, ``_SUCCESS``, left out)."""
        base = f"{self._run_path}/{name}"
        if self.fs.get_file_info(base).type != pafs.FileType.Directory:
            return []
        found = self.fs.get_file_info(pafs.FileSelector(base, recursive=True))
        rel = [i.path[len(base) + 1 :] for i in found if i.type == pafs.FileType.File]
        return sorted(r for r in rel if not any(part.startswith(("_", ".")) for part in r.split("/")))

    def data_file_path(self, name: str, rel: str) -> str:
        """Data file ``rel`` (as :meth:`data_files` names it) of staged table ``name``, as a path of :attr:`fs`."""
        return f"{self._run_path}/{name}/{rel}"

    @property
    def tables(self) -> tuple[str, ...]:
        """The names registered so far."""
        return tuple(self._tables)

    # ---------------------------------------------------------------- the commit

    def commit(self, summary: dict[str, Any]) -> str:
        """Make this run the current version; returns the run folder's URI.

        Steps: check every registered table exists; write ``runs/<run_id>/_summary.json``; replace
        ``_current.json`` (the commit point); delete versions past ``keep_versions`` and an older
        flat layout's tables. A process killed before the pointer write leaves the previous version
        current (and its run folder for the next run to delete); killed after it, the new one.

        Raises:
            OutputCommitError: a registered table was not written, or :meth:`prepare` was not called.
        """
        if not self._prepared:
            raise OutputCommitError(
                f"run {self.run_id}: expected prepare() before commit() (it checks --out and cleans dead runs)"
            )
        for name in self._tables:
            if self.fs.get_file_info(f"{self._run_path}/{name}").type == pafs.FileType.NotFound:
                raise OutputCommitError(f"staged table {name!r} was not written to {join_uri(self.run_dir, name)}")
        previous = read_current(self.out_dir, filesystem=self.fs)
        if previous.pointer and previous.job not in (None, self.job):
            raise OutputLocationError(
                f"--out {self.out_dir}: another job ({previous.job}) committed here during this run; "
                "nothing was committed"
            )
        body = (json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")
        write_atomic(self.fs, f"{self._run_path}/{SUMMARY_FILE}", body)
        history = [r for r in self._kept(previous) if r != self.run_id][: self.keep_versions - 1]
        pointer = {
            "format": POINTER_FORMAT,
            "job": self.job,
            "run_id": self.run_id,
            "path": f"{RUNS_DIR}/{self.run_id}",
            "summary_sha256": hashlib.sha256(body).hexdigest(),
            "tables": list(self._tables),
            "committed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "history": history,
        }
        write_atomic(
            self.fs,
            f"{self._root}/{POINTER_FILE}",
            (json.dumps(pointer, indent=2, sort_keys=True) + "\n").encode("utf-8"),
        )
        self._committed = True  # from here on this run is the current version: abort() must not touch it
        log.info("committed run %s of %s to %s (%s)", self.run_id, self.job, self.out_dir, ", ".join(self._tables))
        self._after_commit([self.run_id, *history], previous)
        return self.run_dir

    def _after_commit(self, kept: list[str], previous: CurrentVersion) -> None:
        """Delete run folders past the kept versions, and an older flat layout's tables and summary."""
        for name in list_dirs(self.fs, f"{self._root}/{RUNS_DIR}"):
            if name not in kept:
                log.info("removing version %s of %s (keep_versions = %d)", name, self.out_dir, self.keep_versions)
                self.fs.delete_dir(f"{self._root}/{RUNS_DIR}/{name}")
        if not previous.pointer and previous.summary:  # the flat layout: <out>/<table>/ and <out>/_summary.json
            legacy = previous.summary.get("tables")
            names = set(legacy) if isinstance(legacy, dict) else set(self._tables)
            for name in sorted(names | set(self._tables)):
                if isinstance(name, str) and RUN_ID_PATTERN.fullmatch(name) and name != RUNS_DIR:
                    delete_path(self.fs, f"{self._root}/{name}")
            delete_path(self.fs, f"{self._root}/{SUMMARY_FILE}")

    def abort(self) -> None:
        """Delete this run's folder (best effort: else the next run deletes it); the current version is untouched."""
        if not self._prepared or self._committed:
            return
        try:
            delete_path(self.fs, self._run_path)
            runs = f"{self._root}/{RUNS_DIR}"
            if self.fs.get_file_info(runs).type == pafs.FileType.Directory and not self.fs.get_file_info(
                pafs.FileSelector(runs)
            ):
                self.fs.delete_dir(runs)
            if self._created_root and not self.fs.get_file_info(pafs.FileSelector(self._root, allow_not_found=True)):
                delete_path(self.fs, self._root)  # --out did not exist before this run: leave none behind
        except OSError as exc:
            log.warning("could not remove %s (%s); the next run removes it", self.run_dir, exc)
