"""The training flags of ``train`` and ``refine``, declared once as argparse parent parsers.

Every flag overrides one :class:`~softlines_attr.train_config.TrainConfig` field of the conf's
``[train]`` (train) or ``[refine]`` (refine) section for one run; a flag not given leaves the conf's
value (its default is ``argparse.SUPPRESS``, so the namespace holds only what the user typed), and
the help text names the conf key. :func:`training_settings` lays the given flags over the section.
"""

from __future__ import annotations

import argparse
from typing import Any

from softlines_attr.train_config import RUNTIME_FIELDS, TrainConfig, with_overrides


def int_list(text: str) -> tuple[int, ...]:
    """``"30,60"`` -> ``(30, 60)``; an argparse type."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, found {text!r}") from None


def _flag(group: argparse._ArgumentGroup, flag: str, field: str, help_text: str, **kwargs: Any) -> None:
    group.add_argument(flag, dest=field, default=argparse.SUPPRESS, help=f"{help_text} (conf key {field})", **kwargs)


def training_parser() -> argparse.ArgumentParser:
    """The parent parser of the flags ``train`` and ``refine`` share (each overrides one conf key)."""
    parser = argparse.ArgumentParser(add_help=False)
    g = parser.add_argument_group("training settings (override the conf's [train] / [refine] keys; docs/MODEL.md)")
    on_off = argparse.BooleanOptionalAction
    _flag(g, "--epochs", "epochs", "passes over the train split", type=int)
    _flag(g, "--batch-size", "batch_size", "images per batch", type=int)
    _flag(g, "--lr", "learning_rate", "SGD learning rate after warm-up", type=float)
    _flag(g, "--momentum", "momentum", "SGD momentum", type=float)
    _flag(g, "--wd", "weight_decay", "weight decay, not applied to BN gamma/beta and biases", type=float)
    _flag(
        g,
        "--lr-schedule",
        "lr_schedule",
        "cosine: to 0 at the last update; step: x --lr-factor after each --lr-step-epochs",
        choices=["cosine", "step"],
    )
    _flag(
        g,
        "--lr-step-epochs",
        "lr_step_epochs",
        "step schedule: epochs after which the rate is multiplied, e.g. 30,60",
        type=int_list,
    )
    _flag(g, "--lr-factor", "lr_factor", "step schedule: the factor", type=float)
    _flag(
        g,
        "--warmup-epochs",
        "warmup_epochs",
        "linear learning-rate warm-up from 0, in epochs, at most half the run",
        type=float,
    )
    _flag(g, "--width", "width", "Inception-BN width multiplier (a base bundle brings its own)", type=float)
    _flag(g, "--input-size", "input_size", "network input side; 0 = a base bundle's, else images.input_size", type=int)
    _flag(
        g,
        "--label-smoothing",
        "label_smoothing",
        "softmax losses: share of the target spread over all classes",
        type=float,
    )
    _flag(g, "--bn-weight-decay", "bn_weight_decay", "also decay BN's gamma", action=on_off)
    _flag(g, "--prior-init", "prior_init", "head biases start at the log of the train label frequencies", action=on_off)
    _flag(
        g, "--color-jitter", "color_jitter", "training augmentation: random hue, saturation, lightness", action=on_off
    )
    _flag(
        g,
        "--class-weights",
        "class_weights",
        "softmax heads: per-class loss weights from the train label counts",
        choices=["none", "inverse", "effective"],
    )
    _flag(g, "--cb-beta", "cb_beta", "beta of the effective number of samples, (1 - beta^n) / (1 - beta)", type=float)
    _flag(g, "--focal-gamma", "focal_gamma", "focal-loss exponent; 0 = cross-entropy", type=float)
    _flag(g, "--threads", "threads", "image decoding threads per record iterator", type=int)
    _flag(g, "--seed", "seed", "random seed", type=int)
    _flag(
        g, "--gpus", "gpus", "GPU ids, e.g. 0,1 (empty: CPU); with --launch local dealt to the workers", type=int_list
    )
    _flag(g, "--log-every", "log_every", "a progress line (images/s, running loss) every N batches; 0 = none", type=int)
    _flag(
        g, "--val-every", "val_every", "validate every N epochs (and after the last); 0 = only after the last", type=int
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue after the last complete checkpoint in --out (same result as an uninterrupted run)",
    )
    return parser


def refine_parser() -> argparse.ArgumentParser:
    """The parent parser of the flags only ``refine`` has (how the base's backbone is trained)."""
    parser = argparse.ArgumentParser(add_help=False)
    g = parser.add_argument_group("refining a base (override the conf's [refine] keys)")
    _flag(g, "--backbone-lr-mult", "backbone_lr_mult", "backbone learning rate = --lr x this", type=float)
    _flag(
        g, "--freeze-backbone", "freeze_backbone", "train only the new head(s)", action=argparse.BooleanOptionalAction
    )
    _flag(g, "--head-warmup-epochs", "head_warmup_epochs", "the first N epochs train only the new head(s)", type=int)
    _flag(
        g,
        "--bn-stats",
        "bn_stats",
        "batch: BN re-estimates its statistics on the tagged set; frozen: the base's",
        choices=["batch", "frozen"],
    )
    return parser


def training_settings(args: argparse.Namespace, section: TrainConfig, *, name: str, **fixed: Any) -> TrainConfig:
    """``section`` (the conf's ``[train]`` or ``[refine]``) with the flags given in ``args`` and ``fixed`` laid over it.

    Args:
        args: Parsed arguments of a parser with :func:`training_parser` (and :func:`refine_parser`) as parents.
        section: The conf's settings for this command.
        name: The section's name, for error messages.
        fixed: Fields the command sets itself (``loss``; the run's own ``kv_store`` and ``worker_dump``,
            which are never taken from ``args`` by name).

    Raises:
        ConfigError: a value out of range, naming the setting.
    """
    fields = TrainConfig.__dataclass_fields__
    given = {key: value for key, value in vars(args).items() if key in fields and key not in RUNTIME_FIELDS}
    return with_overrides(section, {**given, **fixed}, source="command line and conf", section=name)
