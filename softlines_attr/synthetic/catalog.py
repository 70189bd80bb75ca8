"""``generate_catalog``: the bundled demo/test catalog with images, human tags, truth and bad rows.

Everything random is keyed by the seed: the product plan, titles, bad rows and tags are drawn in the
main process from generators keyed ``(seed, stream)``; each image is drawn in a worker from
generators keyed ``(seed, parent)`` (the shoot) and ``(seed, index)`` (the product). So the output
is byte-identical for a seed whatever the number of worker processes.

Output layout (``out_dir``)::

    catalog.parquet    asin, parent_asin, title, image_uri, product_type   (n rows + 1 duplicate)
    tags.parquet       asin, attribute, label        human tags (some wrong on purpose)
    truth.parquet      asin, attribute, label        the drawn class, every dress x attribute
    bad_rows.parquet   asin, kind, row, detail       the rows that are bad on purpose
    summary.json       counts, seed, parameters, bad rows by kind
    images/NNN/ASIN.jpg (.png for the RGBA product)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from softlines_attr.config import CatalogGenConfig, PipelineConfig
from softlines_attr.synthetic.bad_rows import BAD_DETAIL, BAD_KINDS, BAD_ROWS_SCHEMA, bad_row_plan, bad_title
from softlines_attr.synthetic.errors import CatalogGenError, CatalogOutputError
from softlines_attr.synthetic.images import IMAGE_DIR, image_path, run_tasks
from softlines_attr.synthetic.plan import NATIVE_ORDER, RenderPlan, resolve_plan
from softlines_attr.synthetic.products import PRODUCT_TYPES, ProductSample, sample_products
from softlines_attr.synthetic.shoot import RenderTask
from softlines_attr.synthetic.titles import build_titles, compile_vocab

log = logging.getLogger(__name__)

GENERATOR = "softlines-attr make-catalog"
FORMAT_VERSION = 1
OUTPUT_FILES = ("catalog.parquet", "tags.parquet", "truth.parquet", "bad_rows.parquet", "summary.json")

CATALOG_SCHEMA = pa.schema(
    [
        ("asin", pa.string()),
        ("parent_asin", pa.string()),
        ("title", pa.string()),
        ("image_uri", pa.string()),
        ("product_type", pa.string()),
    ]
)
LABEL_SCHEMA = pa.schema([("asin", pa.string()), ("attribute", pa.string()), ("label", pa.string())])

# Random streams (the second key of every generator in the main process).
_S_PLAN, _S_TITLES, _S_BAD, _S_TAGS, _S_ORDER = 1, 2, 3, 4, 5


def _check(cat: CatalogGenConfig, n: int) -> None:
    """Refuse impossible requests with a message naming the key."""
    if n < 1:
        raise CatalogGenError(f"catalog n: expected at least 1 product, found {n}")
    for key in ("non_dress_share", "wrong_tag_share", "spam_share", "bad_row_share", "tag_share"):
        value = getattr(cat, key)
        if not 0.0 <= value <= 1.0:
            raise CatalogGenError(f"catalog.{key}: expected a share between 0 and 1, found {value}")
    (w0, h0), (w1, h1) = cat.min_size, cat.max_size
    if min(w0, h0) < 32 or w1 < w0 or h1 < h0:
        raise CatalogGenError(
            f"catalog.min_size/max_size: expected 32 <= min <= max for width and height, found {list(cat.min_size)} "
            f"and {list(cat.max_size)}"
        )
    if cat.workers < 0:
        raise CatalogGenError(f"catalog.workers: expected 0 (one per core) or more, found {cat.workers}")


def _prepare_output(out_dir: Path) -> None:
    """Create ``out_dir``, or clear a previous generated catalog in it; refuse a folder of other files."""
    if out_dir.exists() and not out_dir.is_dir():
        raise CatalogOutputError(f"output {out_dir} exists and is not a folder; expected a folder or a new path")
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = sorted(p.name for p in out_dir.iterdir())
    if not entries:
        return
    summary = out_dir / "summary.json"
    previous = False
    if summary.is_file():
        try:
            previous = json.loads(summary.read_text(encoding="utf-8")).get("generator") == GENERATOR
        except (ValueError, OSError):
            previous = False
    if not previous:
        raise CatalogOutputError(
            f"output folder {out_dir} is not empty and holds no previous generated catalog (found {entries[:5]}); "
            "expected an empty or new folder"
        )
    log.info("replacing the previous generated catalog in %s", out_dir)
    for name in OUTPUT_FILES:
        (out_dir / name).unlink(missing_ok=True)
    shutil.rmtree(out_dir / IMAGE_DIR, ignore_errors=True)


def _tags(
    products: ProductSample, plan: RenderPlan, dresses: np.ndarray, cat: CatalogGenConfig, rng: np.random.Generator
) -> tuple[list[tuple[int, str, str]], dict[str, dict[str, int]]]:
    """Human tags: ``tag_share`` of dresses per attribute, ``wrong_tag_share`` of them wrong."""
    rows: list[tuple[int, str, str]] = []
    stats: dict[str, dict[str, int]] = {}
    for attr in plan.taxonomy.attributes:
        ap = plan.get(attr.name)
        n_tag = int(round(cat.tag_share * dresses.size))
        chosen = np.sort(rng.permutation(dresses)[:n_tag])
        n_wrong = int(round(cat.wrong_tag_share * n_tag))
        wrong = set(rng.permutation(chosen)[:n_wrong].tolist())
        truth = products.attrs[attr.name][chosen]
        allowed = np.flatnonzero(ap.allowed)
        for i, t in zip(chosen.tolist(), truth.tolist()):
            cls = t
            if i in wrong:
                others = allowed[allowed != t]
                cls = int(others[int(rng.integers(others.size))])
            rows.append((i, attr.name, ap.classes[cls]))
        stats[attr.name] = {"rows": int(n_tag), "wrong": int(n_wrong)}
    return rows, stats


def _write_parquet(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, str(tmp), compression="zstd")
    os.replace(tmp, path)


def generate_catalog(out_dir: Path, conf: PipelineConfig, n: int | None = None, seed: int | None = None) -> dict:
    """Generate the catalog: images, ``catalog.parquet``, tags, truth, bad rows and a summary.

    Args:
        out_dir: The output folder (created; a previous generated catalog in it is replaced).
        conf: The pipeline configuration (``catalog`` settings, ``taxonomy``, ``seed``).
        n: Number of products (default ``conf.catalog.n``); the catalog has one more row, the
            duplicate-asin row, when bad rows are made.
        seed: The seed (default ``conf.seed``).

    Returns:
        The summary written to ``summary.json``, plus ``out_dir`` and ``elapsed_s``.

    Raises:
        CatalogGenError: for a bad count, share or size range.
        CatalogOutputError: if ``out_dir`` holds files that are not a generated catalog.
    """
    started = time.perf_counter()
    cat = conf.catalog
    n = cat.n if n is None else int(n)
    seed = conf.seed if seed is None else int(seed)
    _check(cat, n)
    out_dir = Path(out_dir).resolve()
    _prepare_output(out_dir)
    workers = cat.workers or os.cpu_count() or 1

    plan = resolve_plan(conf.taxonomy)
    products = sample_products(
        n, np.random.default_rng([seed, _S_PLAN]), plan, seed=seed, non_dress_share=cat.non_dress_share, repair=True
    )
    titles_arr, spam = build_titles(
        products, plan, compile_vocab(plan), np.random.default_rng([seed, _S_TITLES]), spam_share=cat.spam_share
    )
    titles: list[str | None] = titles_arr.to_pylist()
    asins = [a.decode() for a in products.asin.tolist()]
    parents = [None if null else p.decode() for p, null in zip(products.parent_asin.tolist(), products.parent_null)]
    ptypes = [PRODUCT_TYPES[t] for t in products.product_type.tolist()]

    bad_rng = np.random.default_rng([seed, _S_BAD])
    bad, duplicate = bad_row_plan(n, cat.bad_row_share, bad_rng)
    uris: list[str | None] = []
    tasks: list[RenderTask] = []
    native_names = list(NATIVE_ORDER)
    markers = plan.markers
    for i in range(n):
        kind = bad.get(i, "jpeg")
        if kind in ("null_title", "empty_title", "size_only_title"):
            titles[i] = bad_title(kind, bad_rng)
            kind = "jpeg"
        path = image_path(out_dir, i, asins[i], kind)
        if kind == "null_image_uri":
            uris.append(None)
            continue
        uris.append(str(path))
        if kind == "missing_image":
            continue
        tasks.append(
            RenderTask(
                index=i,
                parent=int(products.parent[i]),
                seed=seed,
                product_type=ptypes[i],
                attrs=tuple((name, plan.get(name).classes[int(products.attrs[name][i])]) for name in native_names),
                markers=tuple((m.slot, int(products.attrs[m.name][i])) for m in markers),
                colour=int(products.colour[i]),
                min_size=cat.min_size,
                max_size=cat.max_size,
                path=str(path),
                kind=kind,
            )
        )
    log.info("drawing %d images for %d products with %d worker(s) into %s", len(tasks), n, workers, out_dir)
    results = run_tasks(tasks, workers)

    # catalog rows, in a shuffled order, the duplicate inserted after its original
    order = np.random.default_rng([seed, _S_ORDER]).permutation(n).tolist()
    bad_rows: list[tuple[str, str, int, str]] = []
    if duplicate:
        dup_rng = np.random.default_rng([seed, _S_ORDER, 1])
        good = [i for i in range(n) if i not in bad]
        src = int(good[int(dup_rng.integers(len(good)))]) if good else 0
        pos = order.index(src) + 1 + int(dup_rng.integers(0, n - order.index(src)))
        order.insert(pos, src)
    seen: set[int] = set()
    row_of: dict[int, int] = {}
    for row, i in enumerate(order):
        if i in seen:
            bad_rows.append((asins[i], "duplicate_asin", row, f"repeats row {row_of[i]}"))
        else:
            seen.add(i)
            row_of[i] = row
    for i, kind in sorted(bad.items(), key=lambda kv: row_of[kv[0]]):
        bad_rows.append((asins[i], kind, row_of[i], BAD_DETAIL[kind]))
    bad_rows.sort(key=lambda r: (r[2], r[1]))
    catalog = pa.table(
        {
            "asin": [asins[i] for i in order],
            "parent_asin": [parents[i] for i in order],
            "title": [titles[i] for i in order],
            "image_uri": [uris[i] for i in order],
            "product_type": [ptypes[i] for i in order],
        },
        schema=CATALOG_SCHEMA,
    )

    dresses = np.flatnonzero(products.product_type == 0)
    by_asin = np.argsort(np.asarray(asins, dtype=object)[dresses], kind="stable")
    truth_rows = [
        (asins[i], attr.name, plan.get(attr.name).classes[int(products.attrs[attr.name][i])])
        for i in dresses[by_asin].tolist()
        for attr in conf.taxonomy.attributes
    ]
    tag_rows, tag_stats = _tags(products, plan, dresses, cat, np.random.default_rng([seed, _S_TAGS]))
    tag_rows.sort(key=lambda r: (asins[r[0]], conf.taxonomy.names.index(r[1])))

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_parquet(catalog, out_dir / "catalog.parquet")
    _write_parquet(
        pa.table(
            {
                "asin": [r[0] for r in truth_rows],
                "attribute": [r[1] for r in truth_rows],
                "label": [r[2] for r in truth_rows],
            },
            schema=LABEL_SCHEMA,
        ),
        out_dir / "truth.parquet",
    )
    _write_parquet(
        pa.table(
            {
                "asin": [asins[r[0]] for r in tag_rows],
                "attribute": [r[1] for r in tag_rows],
                "label": [r[2] for r in tag_rows],
            },
            schema=LABEL_SCHEMA,
        ),
        out_dir / "tags.parquet",
    )
    _write_parquet(
        pa.table(
            {
                "asin": [r[0] for r in bad_rows],
                "kind": [r[1] for r in bad_rows],
                "row": [r[2] for r in bad_rows],
                "detail": [r[3] for r in bad_rows],
            },
            schema=BAD_ROWS_SCHEMA,
        ),
        out_dir / "bad_rows.parquet",
    )

    summary = _summary(n, seed, cat, plan, products, dresses, spam, bad_rows, tag_stats, results, len(order))
    tmp = out_dir / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / "summary.json")
    elapsed = time.perf_counter() - started
    log.info("catalog of %d rows (%d images) written to %s in %.1f s", len(order), len(results), out_dir, elapsed)
    return {**summary, "out_dir": str(out_dir), "elapsed_s": round(elapsed, 3)}


def _summary(
    n: int,
    seed: int,
    cat: CatalogGenConfig,
    plan: RenderPlan,
    products: ProductSample,
    dresses: np.ndarray,
    spam: np.ndarray,
    bad_rows: list[tuple[str, str, int, str]],
    tag_stats: dict[str, dict[str, int]],
    results: list[tuple[int, int, int, int, str]],
    rows: int,
) -> dict:
    """The JSON summary (deterministic: no timings, no absolute paths, no worker count)."""
    params = {k: v for k, v in dataclasses.asdict(cat).items() if k not in ("n", "workers")}
    class_counts = {}
    for attr in plan.taxonomy.attributes:
        ap = plan.get(attr.name)
        counts = np.bincount(products.attrs[attr.name][dresses], minlength=len(ap.classes))
        class_counts[attr.name] = {c: int(counts[ap.classes.index(c)]) for c in attr.classes}
    formats: dict[str, int] = {}
    for *_, kind in results:
        fmt = "png" if kind == "png_alpha" else "jpeg"
        formats[fmt] = formats.get(fmt, 0) + 1
    widths = [r[1] for r in results] or [0]
    heights = [r[2] for r in results] or [0]
    by_kind = {k: 0 for k in BAD_KINDS}
    for _, kind, _, _ in bad_rows:
        by_kind[kind] += 1
    return {
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "n": n,
        "rows": rows,
        "parameters": params,
        "taxonomy": {
            a.name: {"classes": list(a.classes), "render": plan.get(a.name).kind} for a in plan.taxonomy.attributes
        },
        "products_by_type": {t: int((products.product_type == k).sum()) for k, t in enumerate(PRODUCT_TYPES)},
        "parents": products.n_parents,
        "null_parent_asin": int(products.parent_null.sum()),
        "dresses": int(dresses.size),
        "class_counts": class_counts,
        "spam_titles": int(spam.sum()),
        "tags": {
            "rows": sum(s["rows"] for s in tag_stats.values()),
            "wrong": sum(s["wrong"] for s in tag_stats.values()),
            "by_attribute": tag_stats,
        },
        "truth_rows": int(dresses.size) * len(plan.taxonomy.attributes),
        "bad_rows": {"total": len(bad_rows), "by_kind": by_kind},
        "images": {
            "written": len(results),
            "bytes": int(sum(r[3] for r in results)),
            "by_format": formats,
            "width_range": [min(widths), max(widths)],
            "height_range": [min(heights), max(heights)],
        },
        "files": {
            "catalog": "catalog.parquet",
            "tags": "tags.parquet",
            "truth": "truth.parquet",
            "bad_rows": "bad_rows.parquet",
            "images": IMAGE_DIR + "/",
        },
    }
