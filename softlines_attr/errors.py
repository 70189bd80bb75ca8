"""Named exceptions shared by every stage.

Each message states what was expected and what was found, so a user can fix the input without
reading the code. Job-level failures raise these; one bad row never does (it becomes a reject row).
"""

from __future__ import annotations


class SoftlinesAttrError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SoftlinesAttrError):
    """A configuration or taxonomy file is missing, malformed, or holds a wrong key or value."""


class InputSchemaError(SoftlinesAttrError):
    """An input table lacks a required column or has a column of the wrong type."""


class InputFormatError(SoftlinesAttrError):
    """An input path has a format (suffix) that no reader handles, or does not exist."""


class UnknownAttributeError(SoftlinesAttrError):
    """An attribute name that the taxonomy in use does not define."""


class OutputCommitError(SoftlinesAttrError):
    """Staged outputs could not be moved into place."""
