"""Named errors of the audit job (a bad tag row is a reject with a reason, never one of these)."""

from __future__ import annotations

from softlines_attr.errors import SoftlinesAttrError


class AuditInputError(SoftlinesAttrError):
    """The scores, the tags or ``--since`` cannot be used as asked (another job's output, a missing column...)."""


class AuditAccountingError(SoftlinesAttrError):
    """Tag rows in != rows matched + rows rejected (a bug): nothing is committed."""
