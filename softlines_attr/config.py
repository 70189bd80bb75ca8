"""Configuration: TOML files parsed once into frozen, typed dataclasses.

The defaults live in the repository's ``conf/`` folder (installed under ``share/softlines-attr/conf``
by the wheel). A user's ``--conf FILE`` is laid over ``conf/pipeline.toml`` key by key, so it only
needs the keys it changes; ``--taxonomy FILE`` replaces the attribute taxonomy whole. Every key is
checked: an unknown key, a value of the wrong type or a missing file raises :class:`ConfigError`
naming the file, the key and what was expected.

``parse_dataclass`` is the one strict parser; other modules (EMR specs, ...) reuse it for their own
dataclasses.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from softlines_attr.config_checks import validate_pipeline
from softlines_attr.errors import ConfigError, UnknownAttributeError
from softlines_attr.strict import check_keys_known, config_to_dict, deep_merge, parse_dataclass, read_toml
from softlines_attr.train_config import TrainConfig
from softlines_attr.train_config import validate as validate_training

log = logging.getLogger(__name__)

__all__ = ["config_to_dict", "parse_dataclass", "read_toml"]  # the strict parser's names importers still use here

CONF_DIR_ENV = "SOFTLINES_ATTR_CONF_DIR"
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


# --------------------------------------------------------------------------------------------
# Dataclasses
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelsConfig:
    """Title-word vocabulary and weak-label settings (the label job)."""

    vocab_sizes: tuple[int, ...]
    min_doc_freq: int
    count_by_parent: bool
    val_fraction: float
    min_token_length: int
    stop_words: tuple[str, ...]
    size_tokens: tuple[str, ...]
    shuffle_partitions: int


@dataclass(frozen=True)
class ImageConfig:
    """How images are stored in shards and fed to the network."""

    store_size: int
    input_size: int
    resize_mode: Literal["shorter_side", "pad_square"]
    jpeg_quality: int
    max_pixels: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class ShardConfig:
    """RecordIO shard writing (the shard job)."""

    max_shard_bytes: int
    records_per_shard: int
    min_shards: int
    label_width: int
    fetch_threads: int
    decode_threads_extra: int
    fetch_timeout_s: float
    fetch_retries: int
    max_image_bytes: int
    multipart_chunk_bytes: int


@dataclass(frozen=True)
class CatalogGenConfig:
    """The generated demo/test catalog (``make-catalog``)."""

    n: int
    non_dress_share: float
    wrong_tag_share: float
    spam_share: float
    bad_row_share: float
    tag_share: float
    min_size: tuple[int, int]
    max_size: tuple[int, int]
    workers: int


@dataclass(frozen=True)
class EvaluateConfig:
    """Model evaluation (``softlines-attr evaluate``): the abstain threshold's target.

    Attributes:
        target_precision: The abstain threshold of a head is the lowest confidence threshold whose
            validation precision reaches this.
        threshold_step: Spacing of the precision/coverage curve's thresholds (0, step, ..., 1).
        batch_size: Images per forward pass.
        target_precision_by_attribute: Per-attribute overrides of ``target_precision``.
    """

    target_precision: float = 0.9
    threshold_step: float = 0.01
    batch_size: int = 64
    target_precision_by_attribute: dict[str, float] = field(default_factory=dict)

    def target_for(self, attribute: str) -> float:
        """The target precision of ``attribute`` (its override, else ``target_precision``)."""
        return self.target_precision_by_attribute.get(attribute, self.target_precision)


@dataclass(frozen=True)
class ScoreConfig:
    """The scoring job (``softlines-attr score``): which rows, batching, threads, device."""

    product_types: tuple[str, ...]
    batch_size: int
    fetch_threads: int
    top_k: int
    device: Literal["cpu", "gpu"]
    threads_per_task: int
    rows_per_task: int
    partitions: int
    fetch_timeout_s: float
    fetch_retries: int
    max_image_bytes: int
    model_cache_models: int
    model_cache_mb: int
    decode_overlap: Literal["auto", "on", "off"]


@dataclass(frozen=True)
class OutputConfig:
    """Job outputs (``softlines_attr.io.commit``): immutable run folders behind one ``_current.json`` pointer."""

    keep_versions: int = 3


@dataclass(frozen=True)
class PromoteConfig:
    """The promotion gate (``softlines-attr promote``): when a candidate may replace the registry's current model.

    Attributes:
        max_accuracy_drop: Percentage points a head's val accuracy may fall below the current model's on the same
            shards (0 = never lower).
        min_coverage: The lowest coverage at the head's target precision (``evaluate.target_precision``) a
            candidate head may have, 0..1 (0 = no floor).
    """

    max_accuracy_drop: float = 1.0
    min_coverage: float = 0.0


@dataclass(frozen=True)
class AuditConfig:
    """The production audit (``softlines-attr audit``).

    Attributes:
        tagged_at_column: The tags' date (or timestamp) column that ``--since`` filters on.
    """

    tagged_at_column: str = "tagged_at"


@dataclass(frozen=True)
class DemoConfig:
    """The demo's own settings (``softlines-attr demo``; its models' settings are ``conf/demo.toml``'s [train] /
    [refine])."""

    catalog_factor: float = 4.0
    report_images: int = 36
    single_models: bool = False


@dataclass(frozen=True)
class SparkProfile:
    """A named set of Spark settings: ``master`` is used only outside spark-submit."""

    name: str
    master: str
    conf: dict[str, str]


@dataclass(frozen=True)
class Attribute:
    """One visual attribute and its classes, in index order."""

    name: str
    classes: tuple[str, ...]
    region: Literal["full", "upper"] = "full"

    def index(self, label: str) -> int:
        """Return the class index of ``label``; raise ``UnknownAttributeError`` if absent."""
        try:
            return self.classes.index(label)
        except ValueError:
            raise UnknownAttributeError(
                f"attribute {self.name!r} has no class {label!r}; expected one of {list(self.classes)}"
            ) from None


@dataclass(frozen=True)
class Taxonomy:
    """The attributes to tag, in order, with their classes."""

    attributes: tuple[Attribute, ...]
    source: str = "<defaults>"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    def attribute(self, name: str) -> Attribute:
        """Return the attribute called ``name``; raise ``UnknownAttributeError`` naming the choices."""
        for attr in self.attributes:
            if attr.name == name:
                return attr
        raise UnknownAttributeError(
            f"taxonomy {self.source} has no attribute {name!r}; expected one of {list(self.names)}"
        )


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a job needs, parsed once at start-up and passed down explicitly."""

    seed: int
    spark_profile: str
    labels: LabelsConfig
    images: ImageConfig
    shard: ShardConfig
    catalog: CatalogGenConfig
    score: ScoreConfig
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    refine: TrainConfig = field(default_factory=TrainConfig)
    demo: DemoConfig = field(default_factory=DemoConfig)
    promote: PromoteConfig = field(default_factory=PromoteConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    taxonomy: Taxonomy = field(default_factory=lambda: Taxonomy(attributes=()))
    spark: SparkProfile = field(default_factory=lambda: SparkProfile("local", "local[*]", {}))
    sources: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def default_conf_dir() -> Path:
    """Where the default ``conf/`` lives: ``$SOFTLINES_ATTR_CONF_DIR``, the source tree, or the wheel's data."""
    candidates = []
    if os.environ.get(CONF_DIR_ENV):
        candidates.append(Path(os.environ[CONF_DIR_ENV]))
    candidates.append(Path(__file__).resolve().parent.parent / "conf")
    candidates.append(Path(sys.prefix) / "share" / "softlines-attr" / "conf")
    for cand in candidates:
        if (cand / "pipeline.toml").is_file():
            return cand
    raise ConfigError(f"no default conf/pipeline.toml found; looked in {[str(c) for c in candidates]}")


def load_taxonomy(path: Path | None = None) -> Taxonomy:
    """Parse a taxonomy file (``[attributes.NAME] classes = [...]``); default ``conf/taxonomy.toml``."""
    path = Path(path) if path is not None else default_conf_dir() / "taxonomy.toml"
    data = read_toml(path)
    source = str(path)
    if set(data) != {"attributes"}:
        extra = sorted(set(data) - {"attributes"})
        raise ConfigError(
            f"{source}: expected exactly one top-level table 'attributes', found "
            + (f"unknown key {extra[0]!r}" if extra else "none")
        )
    table = data["attributes"]
    if not isinstance(table, Mapping) or not table:
        raise ConfigError(f"{source}: key 'attributes': expected a table of at least one attribute, found {table!r}")
    attrs = []
    for name, spec in table.items():
        if not _NAME_RE.match(name):
            raise ConfigError(f"{source}: attribute name {name!r}: expected lower_snake_case")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{source}: key 'attributes.{name}': expected a table, found {spec!r}")
        attr = parse_dataclass(Attribute, {"name": name, **spec}, source=source, prefix=f"attributes.{name}.")
        if len(attr.classes) < 2:
            raise ConfigError(
                f"{source}: key 'attributes.{name}.classes': expected at least 2 classes, found {list(attr.classes)}"
            )
        if len(set(attr.classes)) != len(attr.classes):
            raise ConfigError(
                f"{source}: key 'attributes.{name}.classes': expected unique classes, found {list(attr.classes)}"
            )
        for cls_name in attr.classes:
            if not _NAME_RE.match(cls_name):
                raise ConfigError(f"{source}: class {cls_name!r} of {name!r}: expected lower_snake_case")
        attrs.append(attr)
    return Taxonomy(attributes=tuple(attrs), source=source)


def load_spark_profile(name_or_path: str, conf_dir: Path | None = None) -> SparkProfile:
    """Load a Spark profile by name (``conf/spark/NAME.toml``) or by file path."""
    conf_dir = conf_dir or default_conf_dir()
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = conf_dir / "spark" / f"{name_or_path}.toml"
        if not path.is_file():
            known = sorted(p.stem for p in (conf_dir / "spark").glob("*.toml"))
            raise ConfigError(f"spark profile {name_or_path!r} not found; expected one of {known} or a .toml path")
    data = read_toml(path)
    data = {"name": path.stem, **data}
    profile = parse_dataclass(SparkProfile, data, source=str(path))
    return profile


def load_config(
    conf_path: Path | str | Sequence[Path | str] | None = None,
    taxonomy_path: Path | str | None = None,
    spark_profile: str | None = None,
) -> PipelineConfig:
    """Load the pipeline configuration once.

    Args:
        conf_path: A user's TOML laid over ``conf/pipeline.toml`` (only the keys it changes), or
            several, laid in order (the demo's ``conf/demo.toml``, then the user's).
        taxonomy_path: A taxonomy file replacing ``conf/taxonomy.toml``.
        spark_profile: A profile name (``local``, ``emr_gpu``) or a ``.toml`` path; defaults to the
            conf's ``spark_profile``.

    Returns:
        The frozen :class:`PipelineConfig`.

    Raises:
        ConfigError: for a missing file, unknown key, wrong type or out-of-range value.
    """
    conf_dir = default_conf_dir()
    default_path = conf_dir / "pipeline.toml"
    data = read_toml(default_path)
    sources = [str(default_path)]
    source = str(default_path)
    overlays = [] if conf_path is None else [conf_path] if isinstance(conf_path, (str, Path)) else list(conf_path)
    for over in overlays:
        user_path = Path(over)
        user = read_toml(user_path)
        # [refine] may name any [train] key (it is laid over [train] below)
        check_keys_known(
            user, {**data, "refine": {**data.get("train", {}), **data.get("refine", {})}}, source=str(user_path)
        )
        data = deep_merge(data, user)
        sources.append(str(user_path))
        source = str(user_path)
    # [refine] holds the keys in which refining differs from [train]; the rest it takes from [train]
    data = {**data, "refine": {**data.get("train", {}), **data.get("refine", {})}}
    base = parse_dataclass(PipelineConfig, data, source=source)
    taxonomy = load_taxonomy(Path(taxonomy_path) if taxonomy_path is not None else conf_dir / "taxonomy.toml")
    spark = load_spark_profile(spark_profile or base.spark_profile, conf_dir)
    conf = dataclasses.replace(base, taxonomy=taxonomy, spark=spark, sources=tuple(sources))
    validate_pipeline(conf, source)
    validate_training(conf.train, source=source, section="train")
    validate_training(conf.refine, source=source, section="refine")
    log.debug("loaded config from %s (taxonomy %s, spark profile %s)", sources, taxonomy.source, spark.name)
    return conf
