"""Data for ``benchmarks/bench_quality.py``: the real dev-set adapter, tagged subsets, shard label readers.

* :func:`prepare_myntra`: the Myntra dev set (``styles.csv`` + 60x80 JPEGs, outside the project) ->
  a catalog Parquet, a human-tags Parquet for three attributes (article type, base colour, usage),
  a taxonomy TOML with the classes that have enough tagged products, written into the benchmark's
  work folder (the data itself is never copied: ``image_uri`` points at the dev set's files).
* :func:`write_tag_subset`: a tags table restricted to a seeded random subset of the tagged train
  products, with every tagged val product kept (the held-out split is the same for every size).
* :func:`base_label_stats` / :func:`multi_label_counts`: label arrays read from the shard job's
  RecordIO headers (no image decoding), for the prior baseline of the base model and the majority
  class of each attribute on the val split.

Only the benchmark imports this module; tests never read the dev set.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# styles.csv column -> the benchmark's attribute name (taxonomy order).
MYNTRA_ATTRIBUTES: dict[str, str] = {"article_type": "articleType", "base_colour": "baseColour", "usage": "usage"}
MYNTRA_REQUIRED = ("id", "productDisplayName", "image", *MYNTRA_ATTRIBUTES.values())
MYNTRA_ROWS_EXPECTED = 7984


class DataError(Exception):
    """The dev set (or a stage's output) is not what the benchmark expects; the message says what was expected
    and found."""


def snake(value: str) -> str:
    """A tag value as a lower_snake_case class name (``"Navy Blue"`` -> ``navy_blue``, ``"3/4 Sleeve"`` ->
    ``c_3_4_sleeve``)."""
    name = re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")
    if name and not name[0].isalpha():
        name = f"c_{name}"
    return name


@dataclass
class Prepared:
    """What an adapter wrote and counted.

    Attributes:
        catalog: The catalog Parquet (asin, parent_asin, title, image_uri, product_type).
        tags: The human-tags Parquet (asin, attribute, label).
        taxonomy: The taxonomy TOML (one attribute per tag column, its kept classes).
        classes: attribute -> kept classes in taxonomy order.
        counts: Row accounting (rows read, unusable rows by reason, tags kept / folded per attribute).
    """

    catalog: Path
    tags: Path
    taxonomy: Path | None
    classes: dict[str, list[str]]
    counts: dict[str, Any] = field(default_factory=dict)


def _read_styles(path: Path) -> tuple[list[dict[str, str]], list[str], dict[str, int]]:
    """Read ``styles.csv`` robustly: every physical row is either a product dict or a counted bad row."""
    bad: Counter[str] = Counter()
    rows: list[dict[str, str]] = []
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(
                f"{path}: expected a header row with columns {list(MYNTRA_REQUIRED)}, found an empty file"
            ) from None
        missing = [c for c in MYNTRA_REQUIRED if c not in header]
        if missing:
            raise DataError(
                f"{path}: expected columns {list(MYNTRA_REQUIRED)} (and gender, masterCategory, ...), missing "
                f"{missing}; found {header}"
            )
        width = len(header)
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error:
                bad["unparseable_csv_row"] += 1
                continue
            if not fields or all(not f.strip() for f in fields):
                bad["blank_row"] += 1
                continue
            if len(fields) != width:
                # A title with an unquoted comma spills into extra fields: the fields after the title
                # (image) are at the end, the ones before it at the start; rejoin the title between them.
                title_at = header.index("productDisplayName")
                tail = width - title_at - 1
                if len(fields) > width and tail >= 0:
                    fields = [
                        *fields[:title_at],
                        ",".join(fields[title_at : len(fields) - tail]),
                        *fields[len(fields) - tail :],
                    ]
                    bad["rejoined_title_commas"] += 1  # counted, still used
                else:
                    bad["wrong_field_count"] += 1
                    continue
            rows.append({h: f.strip() for h, f in zip(header, fields)})
    return rows, header, dict(bad)


def prepare_myntra(src: Path, out: Path, *, min_class_count: int) -> Prepared:
    """Write the dev set's catalog, tags and taxonomy into ``out`` (the data stays in ``src``).

    Args:
        src: The dev set folder (``styles.csv`` and ``images/``).
        out: The benchmark's data folder (created).
        min_class_count: A class with fewer tagged products is folded out: its tags are dropped
            (counted), so every attribute keeps a class list the models can learn.

    Returns:
        The files written and the row accounting: ``rows_read`` = ``rows_used`` + unusable rows by reason.

    Raises:
        DataError: ``src`` is not a folder with ``styles.csv``, a required column is missing, or no row is usable.
    """
    import pandas as pd

    src = src.resolve()
    styles = src / "styles.csv"
    if not src.is_dir():
        raise DataError(f"--myntra {src}: expected the dev set folder (styles.csv, images/), found no folder")
    if not styles.is_file():
        found = sorted(p.name for p in src.iterdir())[:10]
        raise DataError(f"--myntra {src}: expected {styles}, found no such file (the folder holds {found})")
    rows, _header, bad = _read_styles(styles)
    unusable: Counter[str] = Counter({k: v for k, v in bad.items() if k != "rejoined_title_commas"})
    seen: set[str] = set()
    catalog: list[dict[str, str]] = []
    raw_tags: dict[str, list[tuple[str, str]]] = {a: [] for a in MYNTRA_ATTRIBUTES}
    for row in rows:
        asin = row["id"]
        if not asin:
            unusable["missing_id"] += 1
            continue
        if asin.endswith(".0") and asin[:-2].isdigit():
            asin = asin[:-2]
        if asin in seen:
            unusable["duplicate_id"] += 1
            continue
        title = row["productDisplayName"]
        if not title:
            unusable["empty_title"] += 1
            continue
        image = src / (row["image"] or f"images/{asin}.jpg")
        if not image.is_file():
            unusable["missing_image_file"] += 1
            continue
        seen.add(asin)
        product_type = snake(row.get("masterCategory", "") or "").upper() or "PRODUCT"
        catalog.append(
            {"asin": asin, "parent_asin": asin, "title": title, "image_uri": str(image), "product_type": product_type}
        )
        for attr, column in MYNTRA_ATTRIBUTES.items():
            value = row[column]
            if value and value.upper() not in {"NA", "NAN", "NULL", "NONE"} and snake(value):
                raw_tags[attr].append((asin, snake(value)))
    if not catalog:
        raise DataError(
            f"{styles}: expected usable rows (id, title, an existing image), found none of {len(rows)} "
            f"({dict(unusable)})"
        )
    classes: dict[str, list[str]] = {}
    tag_rows: list[dict[str, str]] = []
    tag_counts: dict[str, Any] = {}
    for attr, pairs in raw_tags.items():
        per_class = Counter(label for _, label in pairs)
        kept = sorted((c for c, n in per_class.items() if n >= min_class_count), key=lambda c: (-per_class[c], c))
        if len(kept) < 2:
            raise DataError(
                f"{styles}: attribute {attr} ({MYNTRA_ATTRIBUTES[attr]}): expected at least 2 classes with >= "
                f"{min_class_count} "
                f"tagged products, found {len(kept)} ({per_class.most_common(5)}); lower --min-class-count"
            )
        keep = set(kept)
        used = [(a, label) for a, label in pairs if label in keep]
        tag_rows += [{"asin": a, "attribute": attr, "label": label} for a, label in used]
        classes[attr] = kept
        folded = {c: n for c, n in per_class.items() if c not in keep}
        tag_counts[attr] = {
            "source_column": MYNTRA_ATTRIBUTES[attr],
            "products_untagged": len(catalog) - len(pairs),
            "tags_read": len(pairs),
            "tags_kept": len(used),
            "classes_read": len(per_class),
            "classes_kept": len(kept),
            "classes_folded": len(folded),
            "tags_folded": sum(folded.values()),
            "folded_classes": dict(sorted(folded.items(), key=lambda kv: (-kv[1], kv[0]))),
        }
    out.mkdir(parents=True, exist_ok=True)
    paths = Prepared(
        catalog=out / "catalog.parquet", tags=out / "tags.parquet", taxonomy=out / "taxonomy.toml", classes=classes
    )
    pd.DataFrame(catalog, columns=["asin", "parent_asin", "title", "image_uri", "product_type"]).to_parquet(
        paths.catalog, index=False
    )
    pd.DataFrame(tag_rows, columns=["asin", "attribute", "label"]).to_parquet(paths.tags, index=False)
    lines = [
        f"# Written by benchmarks/bench_quality.py from {styles}: classes with >= {min_class_count} tagged "
        f"products, most frequent first.",
        "",
    ]
    for attr, kept in classes.items():
        lines += [f"[attributes.{attr}]", "classes = [" + ", ".join(json.dumps(c) for c in kept) + "]", ""]
    paths.taxonomy.write_text("\n".join(lines), encoding="utf-8")
    paths.counts = {
        "source": str(styles),
        "rows_read": len(rows) + sum(unusable[k] for k in ("unparseable_csv_row", "blank_row", "wrong_field_count")),
        "rows_used": len(catalog),
        "rows_unusable": dict(sorted(unusable.items())),
        "rows_with_rejoined_title": bad.get("rejoined_title_commas", 0),
        "rows_expected": MYNTRA_ROWS_EXPECTED,
        "min_class_count": min_class_count,
        "tags": tag_counts,
    }
    return paths


def resolve_output(out: Path) -> Path:
    """A job's output folder as readers see it: ``out/runs/<run_id>`` when ``out/_current.json`` names a
    committed run (the versioned layout), else ``out`` itself (the flat layout)."""
    pointer = out / "_current.json"
    if pointer.is_file():
        try:
            doc = json.loads(pointer.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{pointer}: expected the JSON pointer to the current run, found an unreadable file ({exc})"
            ) from exc
        path = doc.get("path") or (f"runs/{doc['run_id']}" if doc.get("run_id") else None)
        if not path:
            raise DataError(f"{pointer}: expected a 'path' or 'run_id', found keys {sorted(doc)}")
        run = out / path
        if not run.is_dir():
            raise DataError(f"{pointer} names {run}, found no such folder")
        return run
    return out


def read_json(out: Path, name: str) -> dict[str, Any]:
    """``name`` (e.g. ``_summary.json``) of a job's output folder, following ``_current.json``."""
    path = resolve_output(out) / name
    if not path.is_file():
        raise DataError(f"expected {path} (the job's output), found no such file")
    return json.loads(path.read_text(encoding="utf-8"))


def read_labels_table(labels_dir: Path) -> Any:
    """The label job's ``labels/`` table as a pandas DataFrame of ``asin`` and ``split``."""
    import pandas as pd

    table = resolve_output(labels_dir) / "labels"
    if not table.is_dir():
        raise DataError(f"expected the label job's table at {table}, found nothing")
    return pd.read_parquet(table, columns=["asin", "split"])


def write_tag_subset(tags_path: Path, labels_dir: Path, out: Path, size: int | None, seed: int) -> dict[str, Any]:
    """Write the tags of ``size`` seeded-random tagged train products plus every tagged val product.

    Tags of asins the label job did not keep (no split) are dropped and counted. The subsets of one
    seed are nested (the first ``size`` of one permutation), so a larger size only adds products.

    Args:
        tags_path: The full tags table (asin, attribute, label).
        labels_dir: The label job's output folder (its ``split`` column decides train / val).
        out: The subset's Parquet file.
        size: Tagged train products to keep; None = all.
        seed: The permutation's seed.

    Returns:
        Counts: tagged train / val products in the full table and in the subset, tag rows, and the
        tag rows dropped because their asin has no split.
    """
    import pandas as pd

    tags = pd.read_parquet(tags_path, columns=["asin", "attribute", "label"])
    tags["asin"] = tags["asin"].astype(str)
    split = read_labels_table(labels_dir).drop_duplicates("asin").set_index("asin")["split"]
    tags["split"] = tags["asin"].map(split)
    no_split = int(tags["split"].isna().sum())
    tags = tags[tags["split"].isin(["train", "val"])]
    train_asins = np.array(sorted(tags.loc[tags["split"] == "train", "asin"].unique()))
    val_asins = sorted(tags.loc[tags["split"] == "val", "asin"].unique())
    order = np.random.default_rng(seed).permutation(len(train_asins))
    chosen = train_asins[order] if size is None else train_asins[order[: min(size, len(train_asins))]]
    keep = set(chosen.tolist()) | set(val_asins)
    subset = tags[tags["asin"].isin(keep)][["asin", "attribute", "label"]].reset_index(drop=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    subset.to_parquet(out, index=False)
    return {
        "size_requested": size,
        "train_products_available": int(len(train_asins)),
        "train_products": int(len(chosen)),
        "val_products": int(len(val_asins)),
        "tag_rows": int(len(subset)),
        "tag_rows_without_split": no_split,
        "val_asins_sha256": _digest(val_asins),
    }


def _digest(values: list[str]) -> str:
    import hashlib

    return hashlib.sha256("\n".join(values).encode()).hexdigest()[:16]


def _record_labels(rec_paths: list[Path]) -> list[np.ndarray]:
    """Every record's label array (the IRHeader label), in file order, from RecordIO files."""
    from softlines_attr.model.predictor import read_records

    return [labels.astype(np.float64) for labels, _ in read_records(rec_paths)]


def _split_recs(shards_dir: Path) -> dict[str, list[Path]]:
    shards_dir = resolve_output(shards_dir)
    manifest = shards_dir / "shards" / "_manifest.json"
    if not manifest.is_file():
        raise DataError(f"expected a shard manifest at {manifest}, found none")
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    out: dict[str, list[Path]] = {"train": [], "val": []}
    for shard in sorted(doc["shards"], key=lambda s: s["shard"]):
        out.setdefault(shard["split"], []).append(shards_dir / "shards" / shard["shard"])
    return out


def base_label_stats(shards_dir: Path, num_classes: int) -> dict[str, Any]:
    """The prior baseline of a base model, from the base shards' title-word labels.

    The prior predicts every image with each word's train-set frequency: one constant score per
    word, so within a word every val image ties and its average precision is the word's val
    prevalence (positives / images; the expectation over tie orders, and exactly what a tie-aware
    AP gives). ``prior_map`` is the mean of that over the words with a val positive (the classes
    ``val_map`` averages over). ``prior_precision_at_1``: every image's top prediction is the most
    frequent train word; the share of val images that have it.
    """
    recs = _split_recs(shards_dir)
    counts: dict[str, np.ndarray] = {}
    records: dict[str, int] = {}
    for split in ("train", "val"):
        c = np.zeros(num_classes, dtype=np.int64)
        labels = _record_labels(recs.get(split, []))
        for lab in labels:
            idx = lab[lab >= 0].astype(np.int64)
            idx = np.unique(idx[idx < num_classes])
            c[idx] += 1
        counts[split], records[split] = c, len(labels)
    val_n = max(records["val"], 1)
    has_pos = counts["val"] > 0
    prevalence = counts["val"][has_pos] / val_n
    top_word = int(np.argmax(counts["train"]))
    return {
        "train_records": records["train"],
        "val_records": records["val"],
        "words": num_classes,
        "words_with_val_positive": int(has_pos.sum()),
        "mean_words_per_val_image": float(counts["val"].sum() / val_n),
        "prior_map": float(prevalence.mean()) if len(prevalence) else 0.0,
        "prior_precision_at_1": float(counts["val"][top_word] / val_n),
        "most_frequent_train_word_index": top_word,
    }


def multi_label_counts(shards_dir: Path, attributes: list[str]) -> dict[str, dict[str, Any]]:
    """Per attribute and split: tagged records and the count of each class index, from multi shards' headers."""
    recs = _split_recs(shards_dir)
    out: dict[str, dict[str, Any]] = {a: {} for a in attributes}
    for split in ("train", "val"):
        labels = _record_labels(recs.get(split, []))
        matrix = np.stack(labels) if labels else np.zeros((0, len(attributes)))
        if matrix.shape[1] != len(attributes):
            raise DataError(
                f"{shards_dir}: expected {len(attributes)} label columns ({attributes}), found {matrix.shape[1]}"
            )
        for j, attr in enumerate(attributes):
            col = matrix[:, j]
            col = col[col >= 0].astype(np.int64)
            out[attr][split] = {
                "records": int(len(col)),
                "class_counts": {int(k): int(v) for k, v in zip(*np.unique(col, return_counts=True))},
            }
    return out
