"""The titles-only catalog: vendor titles of any size without images, for the label-job benchmark.

Rows are drawn in chunks of :data:`TITLE_CHUNK` products from generators keyed ``(seed, chunk)``
with the image path's own sampler and title builder (:mod:`titles`), so the rows do not depend on
the batch size and a smaller ``n`` gives a prefix of a larger one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from softlines_attr.config import Taxonomy
from softlines_attr.synthetic.errors import CatalogGenError
from softlines_attr.synthetic.plan import RenderPlan, resolve_plan
from softlines_attr.synthetic.products import PRODUCT_TYPES, ProductSample, sample_products
from softlines_attr.synthetic.titles import TitleVocab, build_titles, compile_vocab

log = logging.getLogger(__name__)

TITLE_SCHEMA = pa.schema(
    [
        ("asin", pa.string()),
        ("parent_asin", pa.string()),
        ("title", pa.string()),
        ("image_uri", pa.string()),
        ("product_type", pa.string()),
    ]
)
DEFAULT_URI_PREFIX = "s3://softlines-attr-demo/catalog/images/"
# Rows drawn per random-generator key in the titles-only path: output is the same whatever the
# batch size, and memory stays bounded.
TITLE_CHUNK = 50_000


@lru_cache(maxsize=8)
def _cached_vocab(taxonomy: Taxonomy) -> tuple[RenderPlan, TitleVocab]:
    plan = resolve_plan(taxonomy)
    return plan, compile_vocab(plan)


def _product_columns(products: ProductSample, titles: pa.Array, uri_prefix: str) -> pa.RecordBatch:
    asin = pa.array(products.asin).cast(pa.string())
    parent = pa.array(products.parent_asin).cast(pa.string())
    parent = pc.if_else(pa.array(products.parent_null), pa.scalar(None, pa.string()), parent)
    uri = pc.binary_join_element_wise(uri_prefix, asin, ".jpg", "")
    ptype = pc.take(pa.array(PRODUCT_TYPES, type=pa.string()), pa.array(products.product_type))
    return pa.RecordBatch.from_arrays([asin, parent, titles, uri, ptype], schema=TITLE_SCHEMA)


def title_chunk(
    chunk: int,
    rows: int,
    seed: int,
    taxonomy: Taxonomy,
    *,
    non_dress_share: float = 0.10,
    spam_share: float = 0.10,
    uri_prefix: str = DEFAULT_URI_PREFIX,
) -> pa.RecordBatch:
    """One chunk of the titles-only catalog, drawn from the generator keyed ``(seed, chunk)``.

    Args:
        chunk: Chunk number (global product index of its first row is ``chunk * TITLE_CHUNK``).
        rows: Rows in this chunk (at most ``TITLE_CHUNK``).
        seed: The catalog seed.
        taxonomy: The taxonomy in use.
        non_dress_share: Share of parents that are not dresses.
        spam_share: Share of titles with keyword spam.
        uri_prefix: Prefix of the fake ``image_uri`` (``PREFIX + asin + .jpg``).

    Returns:
        A record batch with :data:`TITLE_SCHEMA`.
    """
    if not 0 < rows <= TITLE_CHUNK:
        raise CatalogGenError(f"chunk rows: expected 1..{TITLE_CHUNK}, found {rows}")
    plan, vocab = _cached_vocab(taxonomy)
    rng = np.random.default_rng([seed, 7, chunk])
    # always draw a whole chunk and cut it, so a smaller n is a prefix of a larger one
    products = sample_products(
        TITLE_CHUNK,
        rng,
        plan,
        seed=seed,
        non_dress_share=non_dress_share,
        code_offset=chunk * TITLE_CHUNK,
        repair=False,
    )
    titles, _ = build_titles(products, plan, vocab, rng, spam_share=spam_share)
    return _product_columns(products, titles, uri_prefix).slice(0, rows)


def iter_title_batches(
    n: int,
    seed: int,
    taxonomy: Taxonomy,
    batch_size: int = 100_000,
    *,
    non_dress_share: float = 0.10,
    spam_share: float = 0.10,
    uri_prefix: str = DEFAULT_URI_PREFIX,
) -> Iterator[pa.RecordBatch]:
    """Stream a titles-only catalog (no images) for the label-job benchmark.

    The rows depend only on ``seed``, the taxonomy and the shares, not on ``batch_size``, and a
    smaller ``n`` gives a prefix of a larger one (the 2 million benchmark rows are the first 2
    million of the 18 million). Memory stays bounded by one batch plus one chunk.

    Args:
        n: Number of products.
        seed: The catalog seed.
        taxonomy: The taxonomy in use (its attributes and classes give the title words).
        batch_size: Rows per yielded batch (the last may be shorter).
        non_dress_share: Share of parents that are not dresses.
        spam_share: Share of titles with keyword spam.
        uri_prefix: Prefix of the fake ``image_uri``.

    Yields:
        Record batches with columns asin, parent_asin, title, image_uri, product_type.

    Raises:
        CatalogGenError: for ``n < 0`` or ``batch_size < 1``.
    """
    if n < 0 or batch_size < 1:
        raise CatalogGenError(f"expected n >= 0 and batch_size >= 1, found n={n}, batch_size={batch_size}")
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    n_chunks = -(-n // TITLE_CHUNK)
    for chunk in range(n_chunks):
        rows = min(TITLE_CHUNK, n - chunk * TITLE_CHUNK)
        pending.append(
            title_chunk(
                chunk,
                rows,
                seed,
                taxonomy,
                non_dress_share=non_dress_share,
                spam_share=spam_share,
                uri_prefix=uri_prefix,
            )
        )
        pending_rows += rows
        while pending_rows >= batch_size:
            table = pa.Table.from_batches(pending, schema=TITLE_SCHEMA).combine_chunks()
            yield from table.slice(0, batch_size).to_batches()
            rest = table.slice(batch_size)
            pending = rest.to_batches()
            pending_rows = rest.num_rows
    if pending_rows:
        yield from pa.Table.from_batches(pending, schema=TITLE_SCHEMA).combine_chunks().to_batches()


def write_titles_parquet(
    path: Path | str,
    n: int,
    seed: int,
    taxonomy: Taxonomy,
    *,
    batch_size: int = 100_000,
    non_dress_share: float = 0.10,
    spam_share: float = 0.10,
    uri_prefix: str = DEFAULT_URI_PREFIX,
) -> int:
    """Write a titles-only catalog to one Parquet file, streaming (bounded memory).

    Args:
        path: The output ``.parquet`` file (its folder is created).
        n: Number of products.
        seed: The catalog seed.
        taxonomy: The taxonomy in use.
        batch_size: Rows per row group.
        non_dress_share: Share of parents that are not dresses.
        spam_share: Share of titles with keyword spam.
        uri_prefix: Prefix of the fake ``image_uri``.

    Returns:
        The number of rows written.

    Raises:
        CatalogGenError: for ``n < 0`` or ``batch_size < 1``.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with pq.ParquetWriter(str(path), TITLE_SCHEMA) as writer:
        for batch in iter_title_batches(
            n, seed, taxonomy, batch_size, non_dress_share=non_dress_share, spam_share=spam_share, uri_prefix=uri_prefix
        ):
            writer.write_batch(batch, row_group_size=batch_size)
            rows += batch.num_rows
    log.info("wrote %d titles to %s", rows, path)
    return rows
