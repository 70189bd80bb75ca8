"""Named errors of the versioned outputs (:mod:`softlines_attr.io.commit`): run ids, ``--out`` folders, pointers."""

from __future__ import annotations

from softlines_attr.errors import SoftlinesAttrError


class RunIdError(SoftlinesAttrError):
    """A run id that is not a safe folder name."""


class OutputLocationError(SoftlinesAttrError):
    """An ``--out`` that cannot take this job's output: a file, read-only, or another job's output."""


class CurrentVersionError(SoftlinesAttrError):
    """An output whose pointer is unreadable or names a run that is missing or does not match its checksum."""
