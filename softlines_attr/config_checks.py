"""Range checks of the pipeline conf: every key with a lowest allowed value, and the cross-key rules.

Run by :func:`softlines_attr.config.load_config` after parsing; a value out of range is a
:class:`~softlines_attr.errors.ConfigError` naming the file and the key. The training sections'
checks are :func:`softlines_attr.train_config.validate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from softlines_attr.errors import ConfigError

if TYPE_CHECKING:
    from softlines_attr.config import PipelineConfig

#: S3's smallest multipart part (every part but the last).
S3_MIN_PART_BYTES = 5 * 1024 * 1024

#: [shard] key -> (lowest allowed value, what the message says is expected). Every key is range-checked.
_SHARD_RANGES: dict[str, tuple[float, str]] = {
    "max_shard_bytes": (1024, ">= 1024 (bytes per .rec file)"),
    "records_per_shard": (1, ">= 1 (records per shard)"),
    "min_shards": (0, ">= 0 (0 = 2 x task slots)"),
    "label_width": (0, ">= 0 (0 = the longest label list)"),
    "fetch_threads": (1, ">= 1"),
    "decode_threads_extra": (0, ">= 0 (images decoded at once per task beyond its cores)"),
    "fetch_timeout_s": (1e-9, "> 0 seconds"),
    "fetch_retries": (1, ">= 1 (attempts per image in all)"),
    "max_image_bytes": (1, ">= 1 (bytes)"),
    "multipart_chunk_bytes": (S3_MIN_PART_BYTES, f">= {S3_MIN_PART_BYTES} (S3's smallest multipart part, 5 MiB)"),
}
_SCORE_FETCH_RANGES: dict[str, tuple[float, str]] = {
    "fetch_timeout_s": (1e-9, "> 0 seconds"),
    "fetch_retries": (1, ">= 1 (attempts per image in all)"),
    "max_image_bytes": (1, ">= 1 (bytes)"),
    "model_cache_models": (1, ">= 1 (models kept per Python worker)"),
    "model_cache_mb": (1, ">= 1 (MB of models kept per Python worker)"),
}


def _validate_ranges(section: Any, name: str, ranges: Mapping[str, tuple[float, str]], source: str) -> None:
    """Refuse a key of ``section`` below its lowest allowed value, naming the key, what is expected and what was
    found."""
    for key, (lowest, expected) in ranges.items():
        value = getattr(section, key)
        if value < lowest:
            raise ConfigError(f"{source}: key '{name}.{key}': expected {expected}, found {value}")


def validate_pipeline(conf: PipelineConfig, source: str) -> None:
    """Refuse out-of-range values of a parsed conf, naming ``source``, the key, what was expected and found."""
    lab = conf.labels
    if not lab.vocab_sizes or any(v < 0 for v in lab.vocab_sizes) or len(set(lab.vocab_sizes)) != len(lab.vocab_sizes):
        raise ConfigError(
            f"{source}: key 'labels.vocab_sizes': expected distinct sizes >= 0 (0 = all words), found "
            f"{list(lab.vocab_sizes)}"
        )
    if not 0.0 <= lab.val_fraction < 1.0:
        raise ConfigError(f"{source}: key 'labels.val_fraction': expected 0 <= value < 1, found {lab.val_fraction}")
    if lab.min_doc_freq < 1:
        raise ConfigError(f"{source}: key 'labels.min_doc_freq': expected >= 1, found {lab.min_doc_freq}")
    img = conf.images
    if not 1 <= img.jpeg_quality <= 100:
        raise ConfigError(f"{source}: key 'images.jpeg_quality': expected 1..100, found {img.jpeg_quality}")
    sc = conf.score
    for key in ("batch_size", "fetch_threads", "top_k", "rows_per_task"):
        if getattr(sc, key) < 1:
            raise ConfigError(f"{source}: key 'score.{key}': expected >= 1, found {getattr(sc, key)}")
    for key in ("threads_per_task", "partitions"):
        if getattr(sc, key) < 0:
            raise ConfigError(f"{source}: key 'score.{key}': expected >= 0 (0 = automatic), found {getattr(sc, key)}")
    if img.input_size > img.store_size:
        raise ConfigError(
            f"{source}: key 'images.input_size': expected <= images.store_size ({img.store_size}), found "
            f"{img.input_size}"
        )
    _validate_ranges(conf.shard, "shard", _SHARD_RANGES, source)
    _validate_ranges(conf.score, "score", _SCORE_FETCH_RANGES, source)
    if conf.output.keep_versions < 1:
        raise ConfigError(
            f"{source}: key 'output.keep_versions': expected >= 1 (the current version counts), found "
            f"{conf.output.keep_versions}"
        )
    _validate_promote_audit(conf, source)
    ev = conf.evaluate
    for key, value in (
        ("target_precision", ev.target_precision),
        *((f"target_precision_by_attribute.{k}", v) for k, v in ev.target_precision_by_attribute.items()),
    ):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"{source}: key 'evaluate.{key}': expected 0 < value <= 1, found {value}")
    if not 0.0 < ev.threshold_step <= 0.5 or ev.batch_size < 1:
        raise ConfigError(
            f"{source}: keys 'evaluate.threshold_step' / 'evaluate.batch_size': expected 0 < step <= 0.5 and "
            f"batch_size >= 1, found {ev.threshold_step} / {ev.batch_size}"
        )


def _validate_promote_audit(conf: PipelineConfig, source: str) -> None:
    """The [promote] gate's bounds and the [audit] date column's name."""
    pr = conf.promote
    if not 0.0 <= pr.max_accuracy_drop <= 100.0:
        raise ConfigError(
            f"{source}: key 'promote.max_accuracy_drop': expected 0..100 (percentage points), found "
            f"{pr.max_accuracy_drop}"
        )
    if not 0.0 <= pr.min_coverage <= 1.0:
        raise ConfigError(f"{source}: key 'promote.min_coverage': expected 0 <= value <= 1, found {pr.min_coverage}")
    column = conf.audit.tagged_at_column
    if not column or not column.replace("_", "a").isalnum() or not column[0].isalpha():
        raise ConfigError(
            f"{source}: key 'audit.tagged_at_column': expected a column name (letters, digits, '_'), found {column!r}"
        )
