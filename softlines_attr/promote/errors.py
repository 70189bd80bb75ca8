"""Named errors of the promotion stage (a refused candidate is a decision, never one of these)."""

from __future__ import annotations

from softlines_attr.errors import SoftlinesAttrError


class PromoteInputError(SoftlinesAttrError):
    """The candidate bundle, the shards or the registry cannot be used as asked (missing, not a bundle, base shards)."""


class RegistryError(PromoteInputError):
    """A registry folder that is not a model registry (another job's output) or whose current model is unreadable."""
