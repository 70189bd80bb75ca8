"""Training settings: one dataclass, one set of defaults, read from the conf's ``[train]`` / ``[refine]``.

:class:`TrainConfig` is what :func:`softlines_attr.model.train.train` takes. Its values come from
``conf/pipeline.toml`` (``[train]`` for base and from-scratch models; ``[refine]`` holds only the
keys in which refining differs and is laid over ``[train]``), parsed by the conf's strict parser;
the ``train`` / ``refine`` command-line flags override single fields
(:mod:`softlines_attr.commands.training`). Distributed workers receive the resolved settings as
JSON (:func:`to_json` / :func:`from_json`), not as a command line. This module imports no MXNet,
so the conf layer can hold it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from softlines_attr.errors import ConfigError

Schedule = Literal["step", "cosine"]
LossName = Literal["auto", "sigmoid", "softmax", "softmax_multi"]
# Fields that describe one run's launch, not a training recipe: set by the commands, never read from the conf.
RUNTIME_FIELDS = ("kv_store", "worker_dump")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Attributes:
        epochs: Passes over the train split.
        batch_size: Images per batch.
        learning_rate: SGD learning rate after warm-up.
        momentum: SGD momentum.
        weight_decay: L2 weight decay (not applied to BN gamma/beta and biases unless ``bn_weight_decay``).
        lr_schedule: ``cosine`` (to 0 at the last update) or ``step`` (``lr_step_epochs`` x ``lr_factor``).
        lr_step_epochs: ``step``: epochs after which the learning rate is multiplied by ``lr_factor``.
        lr_factor: The step factor.
        warmup_epochs: Epochs of linear learning-rate warm-up from 0 (may be fractional).
        width: Inception-BN width multiplier.
        input_size: Network input side; 0: a base bundle's, else ``conf.images.input_size``.
        loss: ``auto`` (``softmax_multi`` for base shards, softmax for refine), ``sigmoid``
            (one per title word), ``softmax_multi`` (one softmax against the title's words, each
            1 / number of words) or ``softmax`` (base shards: on the title's most frequent word).
        label_smoothing: Softmax losses: share of the target spread uniformly over the classes.
        bn_weight_decay: Also decay BN's gamma (MXNet's default); False exempts it (beta and biases always are).
        prior_init: Start each head's bias at the log of its classes' train frequencies, so the
            first updates learn from the images instead of the label priors.
        threads: Image decoding threads of each record iterator.
        seed: Random seed (initialisation, augmentation).
        gpus: GPU ids; empty for CPU.
        backbone_lr_mult: Learning-rate multiplier of the backbone when refining from a base model.
        freeze_backbone: When refining, train only the new head (backbone weights fixed; BN still
            normalises with batch statistics and updates its moving statistics).
        head_warmup_epochs: When refining from a base, the first epochs train only the new heads
            (backbone learning rate 0), then the backbone joins at ``backbone_lr_mult``.
        bn_stats: When refining from a base: ``batch`` (BN normalises with batch statistics and
            updates the base's moving statistics) or ``frozen`` (the base's statistics are kept and
            used in training too: small tagged sets estimate them worse than the base did).
        class_weights: Softmax heads: ``none``, ``inverse`` (frequency) or ``effective`` (number of
            samples, Cui et al. 2019) per-class loss weights from the train split's label counts.
        cb_beta: The effective-number beta.
        focal_gamma: Softmax heads: focal-loss exponent (0 = cross-entropy).
        color_jitter: Training augmentation: random hue, saturation and lightness shifts (the
            attributes do not depend on a dress's colour; helps small data sets generalise).
        log_every: A progress line (images/s, running loss) every this many batches; 0 = none.
        val_every: Validate every this many epochs (and always after the last); 0 = only after the last.
        kv_store: ``local`` / ``device`` (one process) or ``dist_sync`` / ``dist_device_sync`` (a
            ps-lite worker; docs/MODEL.md, Distributed). Set by the command, not the conf.
        worker_dump: Debug (tests): a folder where every worker writes its final params and the
            labels it read; empty: none. Set by the command, not the conf.
    """

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_schedule: Schedule = "cosine"
    lr_step_epochs: tuple[int, ...] = ()
    lr_factor: float = 0.1
    warmup_epochs: float = 1.0
    width: float = 1.0
    input_size: int = 0
    loss: LossName = "auto"
    label_smoothing: float = 0.0
    bn_weight_decay: bool = False
    prior_init: bool = True
    threads: int = 2
    seed: int = 0
    gpus: tuple[int, ...] = ()
    backbone_lr_mult: float = 1.0
    freeze_backbone: bool = False
    head_warmup_epochs: int = 0
    bn_stats: Literal["batch", "frozen"] = "batch"
    class_weights: Literal["none", "inverse", "effective"] = "none"
    cb_beta: float = 0.999
    focal_gamma: float = 0.0
    color_jitter: bool = False
    log_every: int = 50
    val_every: int = 1
    kv_store: Literal["local", "device", "dist_sync", "dist_device_sync"] = "local"
    worker_dump: str = ""


# field -> (lowest allowed value, what is expected), checked by validate()
_AT_LEAST: dict[str, tuple[float, str]] = {
    "epochs": (1, ">= 1"),
    "batch_size": (1, ">= 1"),
    "momentum": (0.0, ">= 0"),
    "weight_decay": (0.0, ">= 0"),
    "lr_factor": (0.0, ">= 0"),
    "warmup_epochs": (0.0, ">= 0"),
    "input_size": (0, ">= 0 (0 = the base bundle's or images.input_size)"),
    "threads": (1, ">= 1"),
    "backbone_lr_mult": (0.0, ">= 0"),
    "head_warmup_epochs": (0, ">= 0"),
    "focal_gamma": (0.0, ">= 0"),
    "log_every": (0, ">= 0 (0 = no progress lines)"),
    "val_every": (0, ">= 0 (0 = only after the last epoch)"),
}


def validate(tc: TrainConfig, *, source: str, section: str) -> TrainConfig:
    """Refuse out-of-range settings, naming ``source``, the key and what was expected; returns ``tc``.

    Raises:
        ConfigError: a value out of its range.
    """

    def fail(key: str, expected: str, found: Any) -> ConfigError:
        return ConfigError(f"{source}: key '{section}.{key}': expected {expected}, found {found!r}")

    for key, (lowest, expected) in _AT_LEAST.items():
        if getattr(tc, key) < lowest:
            raise fail(key, expected, getattr(tc, key))
    if not (tc.learning_rate > 0 and math.isfinite(tc.learning_rate)):
        raise fail("learning_rate", "a finite number > 0", tc.learning_rate)
    if not tc.width > 0:
        raise fail("width", "> 0", tc.width)
    if not 0.0 <= tc.label_smoothing < 1.0:
        raise fail("label_smoothing", "0 <= value < 1", tc.label_smoothing)
    if not 0.0 <= tc.cb_beta < 1.0:
        raise fail("cb_beta", "0 <= value < 1", tc.cb_beta)
    if any(e < 1 for e in tc.lr_step_epochs) or list(tc.lr_step_epochs) != sorted(set(tc.lr_step_epochs)):
        raise fail("lr_step_epochs", "increasing epochs >= 1", list(tc.lr_step_epochs))
    if any(g < 0 for g in tc.gpus):
        raise fail("gpus", "GPU ids >= 0", list(tc.gpus))
    return tc


def with_overrides(tc: TrainConfig, overrides: Mapping[str, Any], *, source: str, section: str) -> TrainConfig:
    """``tc`` with ``overrides`` (field -> value, e.g. the flags given on a command line), validated."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ConfigError(f"{source}: unknown training setting {unknown[0]!r}; expected one of {sorted(names)}")
    return validate(dataclasses.replace(tc, **overrides), source=source, section=section)


def to_json(tc: TrainConfig) -> str:
    """The settings as one JSON object (what a distributed worker receives), without the run's own fields."""
    return json.dumps({k: v for k, v in dataclasses.asdict(tc).items() if k not in RUNTIME_FIELDS}, sort_keys=True)


def from_json(text: str, *, source: str) -> TrainConfig:
    """Settings written by :func:`to_json`, through the conf's strict parser (unknown key / wrong type =
    ConfigError)."""
    from softlines_attr.config import parse_dataclass

    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{source}: expected a JSON object of training settings, found invalid JSON ({exc})"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object of training settings, found {type(data).__name__}")
    return validate(parse_dataclass(TrainConfig, data, source=source), source=source, section="train")
