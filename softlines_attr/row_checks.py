"""Row checks as Spark column expressions: the first failing check's reject reason and message.

Every stage that turns bad rows into rejects (labels, shard, score, audit) lists its checks in order as
``(condition, reason code, message)`` and tags each row with the first one that fails, without a UDF.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

Check = tuple[Column, str, Column]  # (fails when true, reason code, message)


def blank(col: Column) -> Column:
    """True where a string column is null, empty or only whitespace (Spark's ``trim``: spaces)."""
    return col.isNull() | (F.trim(col) == "")


def first_failing(checks: list[Check]) -> tuple[Column, Column]:
    """The reason code and message of the first check whose condition holds, in list order (null when none does)."""
    reason: Column = F.lit(None).cast("string")
    message: Column = F.lit(None).cast("string")
    for cond, code, text in reversed(checks):
        reason = F.when(cond, F.lit(code)).otherwise(reason)
        message = F.when(cond, text).otherwise(message)
    return reason, message
