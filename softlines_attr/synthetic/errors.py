"""Errors raised by the catalog generator."""

from __future__ import annotations

from softlines_attr.errors import SoftlinesAttrError


class CatalogGenError(SoftlinesAttrError):
    """The generator was asked for something it cannot make (a bad count, size range or share)."""


class CatalogOutputError(CatalogGenError):
    """The output folder cannot be used: it holds files that are not a previous generated catalog."""
