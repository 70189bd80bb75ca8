"""Inception-BN (GoogLeNet with batch normalisation, Ioffe & Szegedy 2015) as an MXNet symbol.

The layout follows the paper's Table 1 (the network MXNet's model zoo calls Inception-BN): a 7x7
stem, a 1x1 + 3x3 second stage, ten inception modules (3a-3c, 4a-4e, 5a-5b) of which 3c and 4e halve
the resolution, then global average pooling and one fully connected layer. Every convolution is
followed by batch normalisation and ReLU and has no bias (BN's beta plays that role).

Two things are added for this project:

* ``width`` scales the channel count of every convolution (never below 1), so tests and the demo can
  train a small version of the same architecture on CPU.
* global average pooling makes the network accept any input size from 32x32 upwards; the spatial
  grid at the end is input_size / 32 (7x7 at 224).

The classifier layer is named ``fc_<head>`` (``fc_base`` by default) and the output ``<head>``
with label variable ``<head>_label``, so that refine can cut the graph at ``flatten`` and attach
a new head. :func:`count_parameters` and :func:`count_macs` measure a symbol from its inferred shapes.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import mxnet as mx

from softlines_attr.model.errors import ModelError

log = logging.getLogger(__name__)

DATA_NAME = "data"
FEATURES_NAME = "flatten"
DEFAULT_HEAD = "base"
MIN_INPUT_SIZE = 32


@dataclass(frozen=True)
class InceptionSpec:
    """Channel counts of one inception module (paper's Table 1, full width).

    Attributes:
        name: Module name (``3a`` ... ``5b``), used as a layer-name prefix.
        c1x1: 1x1 branch channels (0: no 1x1 branch, as in the downsampling modules).
        c3x3_reduce: 1x1 reduction in front of the 3x3 branch.
        c3x3: 3x3 branch channels.
        cd3x3_reduce: 1x1 reduction in front of the double-3x3 branch.
        cd3x3: Channels of each of the two stacked 3x3 convolutions.
        pool: ``avg`` or ``max`` pooling in the pool branch.
        proj: 1x1 projection after the pooling (0: pass-through, as in the downsampling modules).
        stride: 2 for the modules that halve the resolution (3c, 4e), else 1.
    """

    name: str
    c1x1: int
    c3x3_reduce: int
    c3x3: int
    cd3x3_reduce: int
    cd3x3: int
    pool: str
    proj: int
    stride: int = 1


INCEPTION_MODULES: tuple[InceptionSpec, ...] = (
    InceptionSpec("3a", 64, 64, 64, 64, 96, "avg", 32),
    InceptionSpec("3b", 64, 64, 96, 64, 96, "avg", 64),
    InceptionSpec("3c", 0, 128, 160, 64, 96, "max", 0, stride=2),
    InceptionSpec("4a", 224, 64, 96, 96, 128, "avg", 128),
    InceptionSpec("4b", 192, 96, 128, 96, 128, "avg", 128),
    InceptionSpec("4c", 160, 128, 160, 128, 160, "avg", 128),
    InceptionSpec("4d", 96, 128, 192, 160, 192, "avg", 128),
    InceptionSpec("4e", 0, 128, 192, 192, 256, "max", 0, stride=2),
    InceptionSpec("5a", 352, 192, 320, 160, 224, "avg", 128),
    InceptionSpec("5b", 352, 192, 320, 192, 224, "max", 128),
)


def scaled(channels: int, width: float) -> int:
    """``channels`` scaled by the width multiplier, rounded, at least 1."""
    return max(1, int(round(channels * width)))


def conv_bn_relu(
    data: mx.sym.Symbol,
    name: str,
    num_filter: int,
    kernel: int,
    stride: int = 1,
    pad: int | None = None,
) -> mx.sym.Symbol:
    """Convolution (no bias) -> BatchNorm -> ReLU; ``pad`` defaults to kernel // 2 ("same" at stride 1)."""
    pad = kernel // 2 if pad is None else pad
    conv = mx.sym.Convolution(
        data,
        num_filter=num_filter,
        kernel=(kernel, kernel),
        stride=(stride, stride),
        pad=(pad, pad),
        no_bias=True,
        name=f"conv_{name}",
    )
    bn = mx.sym.BatchNorm(conv, fix_gamma=False, eps=1e-5, momentum=0.9, name=f"bn_{name}")
    return mx.sym.Activation(bn, act_type="relu", name=f"relu_{name}")


def inception_module(data: mx.sym.Symbol, spec: InceptionSpec, width: float) -> mx.sym.Symbol:
    """One inception module: 1x1, 3x3, double 3x3 and pool branches concatenated on channels.

    At stride 2 (3c, 4e) the 3x3 and double-3x3 branches end with a stride-2 convolution, the pool
    branch is a stride-2 max pool passed through, and there is no 1x1 branch. 3x3 windows are padded
    by 1, so every branch gives ceil(size / stride) whatever the input size.
    """
    n, s = spec.name, spec.stride
    branches = []
    if spec.c1x1:
        branches.append(conv_bn_relu(data, f"{n}_1x1", scaled(spec.c1x1, width), 1))
    b3 = conv_bn_relu(data, f"{n}_3x3_reduce", scaled(spec.c3x3_reduce, width), 1)
    branches.append(conv_bn_relu(b3, f"{n}_3x3", scaled(spec.c3x3, width), 3, stride=s))
    bd = conv_bn_relu(data, f"{n}_double_3x3_reduce", scaled(spec.cd3x3_reduce, width), 1)
    bd = conv_bn_relu(bd, f"{n}_double_3x3_0", scaled(spec.cd3x3, width), 3)
    branches.append(conv_bn_relu(bd, f"{n}_double_3x3_1", scaled(spec.cd3x3, width), 3, stride=s))
    pooled = mx.sym.Pooling(
        data, kernel=(3, 3), stride=(s, s), pad=(1, 1), pool_type=spec.pool, name=f"{spec.pool}_pool_{n}"
    )
    branches.append(conv_bn_relu(pooled, f"{n}_proj", scaled(spec.proj, width), 1) if spec.proj else pooled)
    return mx.sym.concat(*branches, dim=1, name=f"ch_concat_{n}")


def inception_bn_features(width: float = 1.0, data: mx.sym.Symbol | None = None) -> mx.sym.Symbol:
    """The backbone up to global average pooling, flattened: (N, C) features named ``flatten``.

    Args:
        width: Channel multiplier (> 0); 1.0 is the paper's network (1024 features).
        data: The input symbol; a variable named ``data`` by default.

    Returns:
        The feature symbol (its output is ``flatten_output``).

    Raises:
        ModelError: if ``width`` is not a positive finite number.
    """
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ModelError(f"inception_bn width: expected a positive number, found {width!r}")
    x = mx.sym.Variable(DATA_NAME) if data is None else data
    x = conv_bn_relu(x, "1", scaled(64, width), 7, stride=2, pad=3)
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max", name="max_pool_1")
    x = conv_bn_relu(x, "2_reduce", scaled(64, width), 1)
    x = conv_bn_relu(x, "2", scaled(192, width), 3)
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max", name="max_pool_2")
    for spec in INCEPTION_MODULES:
        x = inception_module(x, spec, width)
    x = mx.sym.Pooling(x, kernel=(1, 1), global_pool=True, pool_type="avg", name="global_pool")
    return mx.sym.Flatten(x, name=FEATURES_NAME)


def classification_head(
    features: mx.sym.Symbol,
    num_classes: int,
    head: str = DEFAULT_HEAD,
    *,
    multi_label: bool = False,
) -> mx.sym.Symbol:
    """A fully connected layer ``fc_<head>`` and its training output ``<head>`` on top of ``features``.

    ``multi_label=False``: softmax output (forward: class probabilities; backward: softmax
    cross-entropy against an integer label). ``multi_label=True``: logistic output (forward: one
    sigmoid per class; backward: sigmoid cross-entropy against a 0/1 label of shape (N, classes)).
    The label variable is ``<head>_label``.

    Raises:
        ModelError: if ``num_classes`` < 1 or ``head`` is not a simple name.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ModelError(f"classification head {head!r}: expected num_classes >= 1, found {num_classes!r}")
    if not head or not head.replace("_", "").isalnum():
        raise ModelError(f"classification head name: expected letters, digits and underscores, found {head!r}")
    fc = mx.sym.FullyConnected(features, num_hidden=num_classes, name=f"fc_{head}")
    label = mx.sym.Variable(f"{head}_label")
    if multi_label:
        return mx.sym.LogisticRegressionOutput(fc, label=label, name=head)
    return mx.sym.SoftmaxOutput(fc, label=label, name=head)


def inception_bn(
    num_classes: int,
    width: float = 1.0,
    *,
    multi_label: bool = False,
    head: str = DEFAULT_HEAD,
) -> mx.sym.Symbol:
    """Inception-BN for ``num_classes`` outputs, for any input size of at least 32x32.

    Args:
        num_classes: Output classes (vocabulary size for the base model, an attribute's class count
            for a refined model).
        width: Channel multiplier; 1.0 is the paper's network, 0.125 a tiny one for tests.
        multi_label: Sigmoid cross-entropy over the classes instead of softmax.
        head: The head name: the FC layer is ``fc_<head>``, the output ``<head>``, the label
            ``<head>_label``.

    Returns:
        The training/inference symbol (input ``data``, shape (N, 3, H, W)).
    """
    features = inception_bn_features(width)
    return classification_head(features, num_classes, head, multi_label=multi_label)


def _data_shape(input_shape: Sequence[int]) -> tuple[int, int, int, int]:
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ModelError(f"input_shape: expected (channels, height, width) of one image, found {tuple(input_shape)}")
    return (1, *shape)


def _infer_arg_shapes(sym: mx.sym.Symbol, input_shape: Sequence[int]) -> dict[str, tuple[int, ...]]:
    data_shape = _data_shape(input_shape)
    try:
        arg_shapes, _, _ = sym.infer_shape_partial(**{DATA_NAME: data_shape})
    except mx.base.MXNetError as exc:
        raise ModelError(
            f"cannot infer the network's shapes for input {data_shape}: {str(exc).splitlines()[0]}"
        ) from exc
    return dict(zip(sym.list_arguments(), (tuple(s) for s in arg_shapes)))


def count_parameters(sym: mx.sym.Symbol, input_shape: Sequence[int]) -> int:
    """Learnable parameters of ``sym`` for one image of ``input_shape`` (C, H, W).

    Counts every argument except the input ``data`` and label variables (``*_label``): conv and
    FC weights and biases, BN gamma and beta. BN's moving mean and variance (auxiliary states, not
    learned by gradient) are not counted.

    Raises:
        ModelError: if a shape cannot be inferred for that input.
    """
    shapes = _infer_arg_shapes(sym, input_shape)
    total = 0
    for name, shape in shapes.items():
        if name == DATA_NAME or name.endswith("_label"):
            continue
        if not shape or 0 in shape:
            raise ModelError(
                f"count_parameters: the shape of {name!r} could not be inferred for input {tuple(input_shape)}"
            )
        total += math.prod(shape)
    return total


def count_macs(sym: mx.sym.Symbol, input_shape: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of one image of ``input_shape`` (C, H, W).

    Counts convolutions (output elements x input channels per group x kernel area) and fully
    connected layers (inputs x outputs); BN, ReLU, pooling and concatenation are not counted, as is
    usual for published MAC figures.

    Raises:
        ModelError: if a shape cannot be inferred for that input.
    """
    data_shape = _data_shape(input_shape)
    internals = sym.get_internals()
    try:
        arg_shapes, out_shapes, _ = internals.infer_shape_partial(**{DATA_NAME: data_shape})
    except mx.base.MXNetError as exc:
        raise ModelError(
            f"cannot infer the network's shapes for input {data_shape}: {str(exc).splitlines()[0]}"
        ) from exc
    arg_shape = dict(zip(internals.list_arguments(), (tuple(s) for s in arg_shapes)))
    out_shape = dict(zip(internals.list_outputs(), (tuple(s) for s in out_shapes)))
    nodes = json.loads(sym.tojson())["nodes"]
    total = 0
    for node in nodes:
        if node["op"] not in ("Convolution", "FullyConnected"):
            continue
        weight_name = nodes[node["inputs"][1][0]]["name"]
        weight = arg_shape.get(weight_name, ())
        out = out_shape.get(f"{node['name']}_output", ())
        if not weight or not out or 0 in weight or 0 in out:
            raise ModelError(
                f"count_macs: the shapes of layer {node['name']!r} could not be inferred for input {data_shape}"
            )
        # per output element: one MAC per weight of one filter (in_channels / groups x kernel area)
        total += math.prod(out[1:]) * math.prod(weight[1:])
    return total
