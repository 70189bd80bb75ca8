"""The generated catalog: dress images with known attributes, vendor-style titles, tags and bad rows.

Public entry points:

* :func:`generate_catalog` - the image catalog (``softlines-attr make-catalog``);
* :func:`iter_title_batches` / :func:`write_titles_parquet` - a titles-only catalog of any size for
  the label-job benchmark.

See ``docs/CATALOG.md`` for the design.
"""

from __future__ import annotations

from softlines_attr.synthetic.bad_rows import BAD_KINDS
from softlines_attr.synthetic.catalog import generate_catalog
from softlines_attr.synthetic.errors import CatalogGenError, CatalogOutputError
from softlines_attr.synthetic.title_catalog import TITLE_SCHEMA, iter_title_batches, write_titles_parquet

__all__ = [
    "BAD_KINDS",
    "TITLE_SCHEMA",
    "CatalogGenError",
    "CatalogOutputError",
    "generate_catalog",
    "iter_title_batches",
    "write_titles_parquet",
]
