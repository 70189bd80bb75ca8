"""A release: the source files it is made of, its content-addressed id, and where it lives on S3.

A release is ``<release_prefix><id>/`` holding::

    dist/softlines_attr-<version>-py3-none-any.whl   the package (installed on every node by the bootstrap)
    requirements-emr.txt                              its runtime requirements, without pyspark (EMR's own)
    jobs/*.py  conf/**  emr/**                        the spark-submit entry points, defaults, EMR assets
    SHA256SUMS                                        checked by the bootstrap before installing
    MANIFEST.json                                     uploaded last: a release without it is incomplete

``<id>`` is a digest of the source files (package, setup files, jobs, conf, emr), not of the wheel
(wheels carry timestamps), so the same tree always maps to the same id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from softlines_attr.emr.errors import EmrStageError
from softlines_attr.emr.spec import parse_s3_uri

#: Files and folders of the source tree that make up a release (and its digest).
SOURCE_TOP_FILES: tuple[str, ...] = ("setup.py", "pyproject.toml", "README.md")
SOURCE_DIRS: tuple[str, ...] = ("softlines_attr", "conf", "jobs", "emr")
#: Of those, the folders uploaded as files (the package itself travels inside the wheel).
UPLOADED_DIRS: tuple[str, ...] = ("jobs", "conf", "emr")
_SKIP_PARTS = {"__pycache__", ".pytest_cache", ".mypy_cache", ".ipynb_checkpoints"}
_SKIP_SUFFIXES = {".pyc", ".pyo", ".swp"}
MANIFEST = "MANIFEST.json"
SUMS = "SHA256SUMS"
REQUIREMENTS = "requirements-emr.txt"


@dataclass(frozen=True)
class Release:
    """A staged (or to-be-staged) release: its id and S3 location."""

    release_id: str
    uri: str  # s3://bucket/prefix/releases/<id>/

    @property
    def bucket(self) -> str:
        """The release bucket."""
        return parse_s3_uri(self.uri)[0]

    def key(self, rel: str) -> str:
        """The S3 key of release file ``rel`` (``jobs/score.py``)."""
        return parse_s3_uri(self.uri)[1] + rel

    def s3_uri(self, rel: str) -> str:
        """The ``s3://`` URI of release file ``rel``."""
        return self.uri + rel


@dataclass(frozen=True)
class SourceFile:
    """A file of the source tree, with its path relative to the root and its digest."""

    rel: str
    path: Path
    sha256: str
    size: int


def find_source_root(start: Path | None = None) -> Path:
    """The source tree (the folder holding ``setup.py``, ``softlines_attr/``, ``jobs/``, ``emr/``).

    Raises:
        EmrStageError: when run from an installed wheel without a source tree.
    """
    candidates = [start] if start is not None else [Path.cwd(), Path(__file__).resolve().parents[2]]
    for cand in candidates:
        if (
            cand is not None
            and (cand / "setup.py").is_file()
            and (cand / "softlines_attr").is_dir()
            and (cand / "emr").is_dir()
        ):
            return cand.resolve()
    raise EmrStageError(
        f"no source tree found in {[str(c) for c in candidates]}; expected a folder with setup.py, "
        "softlines_attr/, jobs/ and emr/ (run from the repository or pass --source DIR; launch and schedule "
        "also take --release ID of a staged release)"
    )


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _iter_files(root: Path, rel_dir: str) -> Iterator[Path]:
    base = root / rel_dir
    if not base.is_dir():
        return
    for path in sorted(base.rglob("*")):
        rel_parts = path.relative_to(root).parts
        if (
            path.is_file()
            and not (_SKIP_PARTS & set(rel_parts))
            and path.suffix not in _SKIP_SUFFIXES
            and not path.name.startswith(".")
        ):
            yield path


def collect_sources(root: Path) -> list[SourceFile]:
    """Every file that goes into a release's digest, sorted by relative path."""
    paths = [root / name for name in SOURCE_TOP_FILES if (root / name).is_file()]
    for rel_dir in SOURCE_DIRS:
        paths.extend(_iter_files(root, rel_dir))
    files = [SourceFile(p.relative_to(root).as_posix(), p, sha256_file(p), p.stat().st_size) for p in paths]
    return sorted(files, key=lambda f: f.rel)


def release_id_of(files: list[SourceFile]) -> str:
    """The release id: 16 hex digits of a SHA-256 over the sorted (path, file digest) pairs."""
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.rel}\0{f.sha256}\n".encode())
    return digest.hexdigest()[:16]
