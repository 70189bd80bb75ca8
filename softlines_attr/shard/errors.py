"""Job-level errors of the shard job (one bad image is a reject row, never one of these)."""

from __future__ import annotations

from softlines_attr.errors import SoftlinesAttrError


class ShardInputError(SoftlinesAttrError):
    """The labels, vocabulary or tags input cannot be used as asked (missing vocab size, no tags...)."""


class ShardAccountingError(SoftlinesAttrError):
    """Rows in != records written + rows rejected: something was lost or doubled; nothing is committed."""


class ShardCommitError(SoftlinesAttrError):
    """A shard the tasks reported is missing from the staging area, or has the wrong size."""


class ShardContractError(SoftlinesAttrError):
    """A shard job's output (manifest, summary, shard files) is not what the shard contract says."""


class RecordIOError(SoftlinesAttrError):
    """A ``.rec`` file is not valid RecordIO: a part without the magic number, a truncated part or record."""
