"""The model registry: a versioned output (``softlines_attr.io.commit``) whose versions are model bundles.

Layout of a registry folder ``REGISTRY`` (local or ``s3://``)::

    REGISTRY/_current.json                    the pointer (job ``promote``): the current model, written last
    REGISTRY/runs/<run_id>/<name>/            the promoted bundle (symbol.json, model.params, manifest.json)
    REGISTRY/runs/<run_id>/_summary.json      the promotion's decision (the pointer holds its sha256)
    REGISTRY/decisions/<run_id>/decision.json every promote run's decision, promoted or refused
    REGISTRY/decisions/<run_id>/candidate.json, current.json   the two evaluations on the val split

A promotion writes the bundle into its own run folder and commits it with one pointer write, so a reader
(``score --models REGISTRY``, :func:`softlines_attr.score.models.resolve_model_dirs`) sees the old model or the
new one, never a mix. A refused candidate writes nothing under ``runs/`` and leaves the pointer as it was; its
decision is under ``decisions/`` (written after the commit point: a promotion killed between the two leaves the
model current and the decision in its ``_summary.json``; a retried run finds the candidate current and writes its
decision).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from softlines_attr.io.commit import RUN_ID_PATTERN, CurrentVersion, StagedOutput
from softlines_attr.io.filesystem import filesystem_for, write_atomic
from softlines_attr.io.storage import join_uri
from softlines_attr.model.manifest import MANIFEST_FILE, PARAMS_FILE, SYMBOL_FILE
from softlines_attr.promote.errors import RegistryError

log = logging.getLogger(__name__)

REGISTRY_JOB = "promote"  # the job name in a registry's _current.json
DECISIONS_DIR = "decisions"
DECISION_FILE = "decision.json"
BUNDLE_FILES = (SYMBOL_FILE, PARAMS_FILE, MANIFEST_FILE)


def current_bundle_dir(current: CurrentVersion, download_dir: Path | None = None) -> Path | None:
    """The current model's bundle folder (downloaded from S3 into ``download_dir``); None without a current model.

    Raises:
        RegistryError: the current version holds no bundle, or more than one.
    """
    if not current.pointer:
        return None
    from softlines_attr.score.models import resolve_model_dirs

    found = resolve_model_dirs([current.uri], Path(download_dir or tempfile.mkdtemp(prefix="registry-")))
    if len(found) != 1:
        raise RegistryError(f"registry version {current.uri}: expected one model bundle, found {len(found)}")
    return found[0]


def version_name(candidate: str | Path) -> str:
    """The bundle's folder name inside a registry version, from the candidate as the user named it (a local path
    or an ``s3://`` URI, never the folder an S3 bundle was downloaded to): the scoring tables' model name
    (``<out>/bundle`` -> ``<out>``'s name), ``model`` when that is not a plain name."""
    from softlines_attr.model.bundle import BUNDLE_DIR

    parts = [p for p in str(candidate).split("://", 1)[-1].rstrip("/").split("/") if p]
    if len(parts) > 1 and parts[-1] == BUNDLE_DIR:
        parts = parts[:-1]
    name = parts[-1] if parts else ""
    return name if RUN_ID_PATTERN.fullmatch(name) and name != "runs" else "model"


def publish_bundle(staged: StagedOutput, bundle_dir: Path, name: str) -> str:
    """Copy a verified bundle's three files into the staged version's ``<name>/``; returns its URI.

    The files go through the staged output's filesystem (local or S3), byte for byte, so the bundle's checksums
    still hold; nothing is visible to readers until :meth:`StagedOutput.commit`.
    """
    uri = staged.table_path(name)
    _, path = filesystem_for(uri)
    staged.fs.create_dir(path, recursive=True)
    for file_name in BUNDLE_FILES:
        with staged.fs.open_output_stream(f"{path}/{file_name}") as fh:
            fh.write((bundle_dir / file_name).read_bytes())
    log.info("staged bundle %s as %s", bundle_dir, uri)
    return uri


def write_decision(
    fs: pafs.FileSystem, registry: str, run_id: str, decision: dict[str, Any], evaluations: dict[str, dict]
) -> str:
    """Write ``decisions/<run_id>/decision.json`` (and the evaluations beside it) atomically; returns its URI."""
    folder = join_uri(registry, DECISIONS_DIR, run_id)
    _, path = filesystem_for(folder)
    fs.create_dir(path, recursive=True)
    for name, doc in evaluations.items():
        write_atomic(fs, f"{path}/{name}.json", (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    body = json.dumps(decision, indent=2, sort_keys=True, default=str) + "\n"
    write_atomic(fs, f"{path}/{DECISION_FILE}", body.encode("utf-8"))
    return join_uri(folder, DECISION_FILE)
