"""The shard job: labels table (and human tags) -> MXNet RecordIO shards, manifest, record index, rejects.

Entry point: :func:`run_shard_job` with a :class:`ShardJob`. The pieces: :mod:`.inputs` (input
checks), :mod:`.plan` (equal-count shards, routing), :mod:`.task` (fetch, decode, write, commit on the
executors), :mod:`.recordio` (the RecordIO format), :mod:`.job` (the driver).
"""

from softlines_attr.shard.errors import ShardAccountingError, ShardCommitError, ShardInputError
from softlines_attr.shard.job import INDEX_DDL, MANIFEST_DDL, ShardJob, run_shard_job
from softlines_attr.shard.inputs import REJECT_DDL, labels_column

__all__ = [
    "INDEX_DDL",
    "MANIFEST_DDL",
    "REJECT_DDL",
    "ShardAccountingError",
    "ShardCommitError",
    "ShardInputError",
    "ShardJob",
    "labels_column",
    "run_shard_job",
]
