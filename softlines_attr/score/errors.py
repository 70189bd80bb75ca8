"""Job-level errors of the scoring job (one bad image is an error row, never one of these)."""

from __future__ import annotations

from softlines_attr.errors import SoftlinesAttrError


class ScoreInputError(SoftlinesAttrError):
    """The catalog, the model folders or the previous run cannot be used as asked."""


class ScoreModelError(ScoreInputError):
    """The model bundles cannot be scored together (no attribute head, two bundles for one attribute...)."""


class ScoreAccountingError(SoftlinesAttrError):
    """Rows in != scored + carried + errors + skipped, or a duplicate (asin, attribute): nothing is committed."""


class ScoreSchemaError(SoftlinesAttrError):
    """A table does not match the versioned output contract (contract/score_tables.json)."""


class ScoreDeviceError(SoftlinesAttrError):
    """``score.device = "gpu"`` but Spark gave the task no GPU (a cluster configuration problem)."""
