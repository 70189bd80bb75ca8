"""The shard job: labels table (and human tags) -> MXNet RecordIO shards, manifest, record index, rejects.

Entry point: :func:`run_shard_job` with a :class:`ShardJob`. The pieces: :mod:`.request` (the job),
:mod:`.inputs` (input checks), :mod:`.plan` (equal-count shards, routing), :mod:`.task` (fetch,
decode, write, commit on the executors), :mod:`.recordio` (the RecordIO format), :mod:`.tables`
(DDLs, table writers), :mod:`.summary` (input counts, manifest, summary), :mod:`.job` (the driver);
the shard set's contract is :mod:`.manifest` (the files' types) and :mod:`.contract` (reading and
writing a shard set outside the job).
"""

from softlines_attr.shard.errors import ShardAccountingError, ShardCommitError, ShardInputError
from softlines_attr.shard.inputs import REJECT_DDL, labels_column
from softlines_attr.shard.job import run_shard_job
from softlines_attr.shard.request import ShardJob
from softlines_attr.shard.tables import INDEX_DDL, MANIFEST_DDL

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
