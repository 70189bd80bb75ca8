"""Refine: a base model's backbone with a new classification head (the paper's refined model).

:func:`refine_network` cuts a loaded base bundle's symbol at the global-pooled features
(``flatten``) and attaches a new ``fc_<head>`` for the attribute's classes;
:func:`backbone_params` gives every base parameter except the base's own heads, to initialise the
new network with (the new head is initialised fresh). Training then uses a lower learning rate on
the backbone (``TrainConfig.backbone_lr_mult``) or freezes it (``TrainConfig.freeze_backbone``).
:func:`refine_features` is the cut alone, for several heads on one backbone (multi-head);
:func:`check_refine_inputs` checks that shards hold the attribute a refine run asks for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import mxnet as mx

from softlines_attr.config import Taxonomy
from softlines_attr.model.bundle import Bundle
from softlines_attr.model.errors import ModelError, TrainInputError
from softlines_attr.model.inception_bn import DATA_NAME, FEATURES_NAME, classification_head
from softlines_attr.model.losses import is_loss_constant
from softlines_attr.model.manifest import PARAMS_FILE

if TYPE_CHECKING:
    from softlines_attr.shard.contract import ShardSet

log = logging.getLogger(__name__)

ALL_ATTRIBUTES = "all"  # refine --attribute all: the multi-head model on multi shards


def refine_features(base: Bundle) -> mx.sym.Symbol:
    """The base bundle's backbone: its symbol cut at the pooled features (``flatten``).

    Raises:
        ModelError: if the base symbol has no ``flatten`` layer (not an Inception-BN from this project).
    """
    internals = base.symbol.get_internals()
    key = f"{FEATURES_NAME}_output"
    if key not in internals.list_outputs():
        raise ModelError(
            f"base bundle {base.path}: expected a layer {FEATURES_NAME!r} (the pooled features) in its symbol, "
            f"found none"
        )
    return internals[key]


def refine_network(base: Bundle, num_classes: int, head: str, *, multi_label: bool = False) -> mx.sym.Symbol:
    """The base bundle's backbone (up to ``flatten``) with a new head ``fc_<head>`` of ``num_classes``.

    Raises:
        ModelError: if the base symbol has no ``flatten`` layer (not an Inception-BN from this project).
    """
    return classification_head(refine_features(base), num_classes, head, multi_label=multi_label)


def head_param_names(sym: mx.sym.Symbol, heads: list[str] | tuple[str, ...]) -> set[str]:
    """The arguments of ``sym`` that belong to the given heads' FC layers."""
    prefixes = tuple(f"fc_{h}_" for h in heads)
    return {n for n in sym.list_arguments() if n.startswith(prefixes)}


def backbone_names(sym: mx.sym.Symbol, head: str | Sequence[str]) -> list[str]:
    """Every learnable argument of ``sym`` except the input, the labels, the loss constants (class
    weights) and the FC layers of ``head`` (one head name or several)."""
    skip = head_param_names(sym, [head] if isinstance(head, str) else list(head))
    return [
        n
        for n in sym.list_arguments()
        if n != DATA_NAME and not n.endswith("_label") and not is_loss_constant(n) and n not in skip
    ]


def backbone_params(base: Bundle, sym: mx.sym.Symbol) -> tuple[dict[str, mx.nd.NDArray], dict[str, mx.nd.NDArray]]:
    """The base's parameters that ``sym`` uses, without any of the base's heads (copies, on CPU).

    Raises:
        ModelError: if a backbone parameter of ``sym`` is missing from the base.
    """
    base_heads = head_param_names(base.symbol, [h.name for h in base.manifest.heads])
    wanted_args = [
        n
        for n in sym.list_arguments()
        if n != DATA_NAME and not n.endswith("_label") and not is_loss_constant(n) and n not in base_heads
    ]
    new_head = [n for n in wanted_args if n not in base.arg_params]
    arg = {n: base.arg_params[n].copy() for n in wanted_args if n in base.arg_params}
    aux = {n: base.aux_params[n].copy() for n in sym.list_auxiliary_states() if n in base.aux_params}
    missing_aux = sorted(set(sym.list_auxiliary_states()) - set(aux))
    unexpected = [n for n in new_head if not n.startswith("fc_")]
    if unexpected or missing_aux:
        name = (unexpected or missing_aux)[0]
        raise ModelError(
            f"base bundle {base.path}: expected every backbone parameter of the new network, {name!r} is missing"
        )
    log.info("refine: %d backbone arrays from %s; new head parameters %s", len(arg) + len(aux), base.path, new_head)
    return arg, aux


def base_model_ref(base: Bundle) -> str:
    """How a refined bundle names its base: the base folder and the sha256 of its params."""
    return f"{base.path}@sha256:{base.manifest.files[PARAMS_FILE]}"


def check_refine_inputs(shards: ShardSet, attribute: str, taxonomy: Taxonomy) -> None:
    """Check that the shards hold the human tags ``attribute`` asks for.

    ``attribute`` names a taxonomy attribute (refine shards of that attribute), or is ``all`` (multi
    shards: one label column per attribute, for a multi-head model).

    Raises:
        TrainInputError: base shards, shards of another attribute, or ``all`` with single-attribute shards.
        UnknownAttributeError: an attribute the taxonomy lacks.
    """
    if attribute == ALL_ATTRIBUTES:
        if shards.mode != "multi":
            raise TrainInputError(
                f"--attribute all expects multi shards (shard --tags T --attribute all), found {shards.mode} shards "
                f"at {shards.root}"
                + (f" of attribute {shards.summary.get('attribute')!r}" if shards.mode == "refine" else "")
            )
        for name in shards.attributes:
            taxonomy.attribute(name)
        return
    taxonomy.attribute(attribute)
    if shards.mode != "refine":
        hint = (
            " (use --attribute all for multi shards)"
            if shards.mode == "multi"
            else " (title-word shards are for softlines-attr train)"
        )
        raise TrainInputError(
            f"--attribute {attribute}: expected refine shards of {attribute!r}, found {shards.mode} shards at "
            f"{shards.root}{hint}"
        )
    found = shards.summary.get("attribute")
    if found != attribute:
        raise TrainInputError(
            f"--attribute {attribute}: expected refine shards of {attribute!r}, found shards of attribute "
            f"{found!r} at {shards.root}"
        )


def freeze_batch_norm(sym: mx.sym.Symbol) -> mx.sym.Symbol:
    """``sym`` with every BatchNorm normalising with its moving statistics, in training too (``use_global_stats``).

    For refining on a small tagged set: the base's statistics, estimated on the whole base
    catalog, are kept instead of being re-estimated from batches of a few thousand images. BN's
    gamma and beta still learn (unless the backbone is frozen).
    """
    graph = json.loads(sym.tojson())
    frozen = 0
    for node in graph["nodes"]:
        if node["op"] == "BatchNorm":
            node.setdefault("attrs", {})["use_global_stats"] = "True"
            frozen += 1
    log.info("refine: %d BatchNorm layers use the base's moving statistics", frozen)
    return mx.sym.load_json(json.dumps(graph))
