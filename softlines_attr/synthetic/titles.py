"""Vendor-style product titles, built column-wise with numpy and Arrow compute.

A title is a row of *slots* (brand, "Women's", fillers, attribute phrases, colour, material, the
product noun, a separator, sizes and tail phrases, keyword spam). Each slot is a column of token
ids drawn with numpy from weighted variant tables (:mod:`softlines_attr.synthetic.vocab`); the
middle slots are shuffled per row; Arrow's ``take`` turns ids into strings and
``binary_join_element_wise`` glues the slots, skipping absent ones. No Python loop runs per row,
which is what lets the titles-only path (:mod:`title_catalog`) make millions of titles a minute on
one core. The image path uses the very same builder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from softlines_attr.synthetic.plan import AttributePlan, RenderPlan
from softlines_attr.synthetic.products import PRODUCT_TYPES, ProductSample
from softlines_attr.synthetic.vocab import (
    BRANDS,
    COLOURS,
    FILLERS,
    MARKER_MENTION_PROB,
    MATERIALS,
    MENTION_PROB,
    NOUNS,
    SEPARATORS,
    SIZES,
    TAILS,
    WOMEN,
    Phrases,
    attribute_phrases,
)

SPAM_SLOTS = 6
# Position bias of the middle slots (smaller = nearer the front); uniform noise of width 1.5 is added.
_MID_BASE = {
    "filler": 0.0,
    "colour": 0.3,
    "material": 0.5,
    "pattern": 0.5,
    "neck_style": 0.6,
    "sleeve_type": 0.6,
    "marker": 0.6,
    "silhouette": 1.0,
    "hemline": 1.2,
}


class _Tokens:
    """An append-only token list: text -> id."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._ids: dict[str, int] = {}

    def id(self, text: str) -> int:
        if text not in self._ids:
            self._ids[text] = len(self.texts)
            self.texts.append(text)
        return self._ids[text]


@dataclass(frozen=True)
class _Table:
    """Variant tables for K groups: ``ids[k, j]`` token id, ``cdf[k, j]`` cumulative weight."""

    ids: np.ndarray
    cdf: np.ndarray

    def draw(self, group: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One token id per row of ``group`` (the group index of each row)."""
        u = rng.random(group.size)
        j = (u[:, None] > self.cdf[group]).sum(axis=1)
        return self.ids[group, np.minimum(j, self.ids.shape[1] - 1)]


def _table(groups: list[Phrases], tokens: _Tokens) -> _Table:
    width = max(len(g) for g in groups)
    ids = np.zeros((len(groups), width), dtype=np.int32)
    cdf = np.ones((len(groups), width), dtype=np.float64)
    for k, group in enumerate(groups):
        weights = np.array([w for _, w in group], dtype=np.float64)
        c = np.cumsum(weights) / weights.sum()
        ids[k, : len(group)] = [tokens.id(t) for t, _ in group]
        ids[k, len(group) :] = ids[k, len(group) - 1]
        cdf[k, : len(group)] = c
    return _Table(ids=ids, cdf=cdf)


@dataclass(frozen=True)
class TitleVocab:
    """Compiled variant tables for one render plan."""

    texts: pa.Array
    attributes: dict[str, _Table]
    brand: _Table
    women: _Table
    filler: _Table
    material: _Table
    colour: _Table
    noun: _Table
    sep: _Table
    size: _Table
    tail: _Table


def compile_vocab(plan: RenderPlan) -> TitleVocab:
    """Compile the title vocabulary for ``plan`` (every attribute drawn, native or marker).

    Args:
        plan: The resolved render plan.

    Returns:
        The compiled vocabulary.
    """
    tokens = _Tokens()
    attributes = {
        attr.name: _table([attribute_phrases(attr.name, c) for c in attr.classes], tokens) for attr in plan.attributes
    }
    vocab = TitleVocab(
        texts=pa.array([]),
        attributes=attributes,
        brand=_table([BRANDS], tokens),
        women=_table([WOMEN], tokens),
        filler=_table([FILLERS], tokens),
        material=_table([MATERIALS], tokens),
        colour=_table([c[2] for c in COLOURS], tokens),
        noun=_table([NOUNS[t] for t in PRODUCT_TYPES], tokens),
        sep=_table([SEPARATORS], tokens),
        size=_table([SIZES], tokens),
        tail=_table([TAILS], tokens),
    )
    return TitleVocab(**{**vocab.__dict__, "texts": pa.array(tokens.texts, type=pa.string())})


def _maybe(ids: np.ndarray, p: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Keep each id with probability ``p``; absent slots are -1."""
    keep = rng.random(ids.size) < p
    return np.where(keep, ids, -1).astype(np.int32)


def _mention_prob(attr: AttributePlan, product_type: np.ndarray) -> np.ndarray:
    if attr.kind == "marker":
        return np.where(product_type == 0, MARKER_MENTION_PROB, 0.0)
    table = np.array([MENTION_PROB[t].get(attr.name, 0.0) for t in PRODUCT_TYPES])
    return table[product_type]


def _spam_slots(
    products: ProductSample, plan: RenderPlan, vocab: TitleVocab, spam: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """Keyword-spam slots: on spam rows 2 to 6 attribute phrases, the first contradicting the truth."""
    n = len(products)
    attrs = [a for a in plan.attributes if a.kind != "hidden"] or list(plan.attributes)
    count = rng.integers(2, SPAM_SLOTS + 1, size=n)
    slots: list[np.ndarray] = []
    for j in range(SPAM_SLOTS):
        which = rng.integers(0, len(attrs), size=n)
        ids = np.full(n, -1, dtype=np.int32)
        for a_idx, attr in enumerate(attrs):
            rows = np.flatnonzero(spam & (which == a_idx) & (j < count))
            if rows.size == 0:
                continue
            allowed = np.flatnonzero(attr.allowed)
            if j == 0:  # a class other than the true one
                truth = products.attrs[attr.name][rows]
                pos = np.searchsorted(allowed, truth)
                r = rng.integers(0, len(allowed) - 1, size=rows.size)
                cls = allowed[np.where(r < pos, r, r + 1)]
            else:
                cls = allowed[rng.integers(0, len(allowed), size=rows.size)]
            ids[rows] = vocab.attributes[attr.name].draw(cls, rng)
        slots.append(ids)
    return slots


def build_titles(
    products: ProductSample, plan: RenderPlan, vocab: TitleVocab, rng: np.random.Generator, *, spam_share: float
) -> tuple[pa.StringArray, np.ndarray]:
    """Titles for sampled products.

    Args:
        products: The sampled products (attributes, colours, product types).
        plan: The render plan the products were sampled with.
        vocab: The plan's compiled vocabulary.
        rng: The random generator (consumed in a fixed order).
        spam_share: Share of titles that end in keyword spam contradicting the image.

    Returns:
        ``(titles, spam)``: the titles and a boolean array marking the spam rows.
    """
    n = len(products)
    ptype = products.product_type
    spam = rng.random(n) < spam_share
    head = [
        _maybe(vocab.brand.draw(np.zeros(n, np.int64), rng), 0.8, rng),
        _maybe(vocab.women.draw(np.zeros(n, np.int64), rng), np.where(ptype == 2, 0.4, 0.6), rng),
    ]
    zero = np.zeros(n, np.int64)
    mid: list[np.ndarray] = []
    mid_base: list[float] = []
    mid.append(_maybe(vocab.filler.draw(zero, rng), 0.55, rng))
    mid_base.append(_MID_BASE["filler"])
    mid.append(_maybe(vocab.filler.draw(zero, rng), 0.2, rng))
    mid_base.append(_MID_BASE["filler"])
    for attr in plan.attributes:
        ids = vocab.attributes[attr.name].draw(products.attrs[attr.name], rng)
        mid.append(_maybe(ids, _mention_prob(attr, ptype), rng))
        mid_base.append(_MID_BASE.get(attr.name, _MID_BASE["marker"]))
    mid.append(_maybe(vocab.colour.draw(products.colour, rng), 0.65, rng))
    mid_base.append(_MID_BASE["colour"])
    mid.append(_maybe(vocab.material.draw(zero, rng), 0.35, rng))
    mid_base.append(_MID_BASE["material"])
    mid_ids = np.stack(mid, axis=1)
    keys = np.asarray(mid_base)[None, :] + 1.5 * rng.random(mid_ids.shape)
    mid_ids = np.take_along_axis(mid_ids, np.argsort(keys, axis=1, kind="stable"), axis=1)
    noun = vocab.noun.draw(ptype, rng).astype(np.int32)
    size = _maybe(vocab.size.draw(zero, rng), 0.3, rng)
    tail = _maybe(vocab.tail.draw(zero, rng), 0.3, rng)
    has_tail = (size >= 0) | (tail >= 0)
    sep = np.where(has_tail, _maybe(vocab.sep.draw(zero, rng), 0.6, rng), -1).astype(np.int32)
    swap = rng.random(n) < 0.5
    tail_a = np.where(swap, tail, size)
    tail_b = np.where(swap, size, tail)
    spam_ids = _spam_slots(products, plan, vocab, spam, rng)

    columns = head + [mid_ids[:, j] for j in range(mid_ids.shape[1])] + [noun, sep, tail_a, tail_b] + spam_ids
    strings = [pc.take(vocab.texts, pa.array(c, mask=c < 0)) for c in columns]
    u = rng.random(n)
    joiner = pa.array(np.where(u < 0.94, " ", np.where(u < 0.98, "  ", "\u00a0")).astype(object), type=pa.string())
    titles = pc.binary_join_element_wise(*strings, joiner, null_handling="skip")
    titles = pc.replace_substring_regex(titles, pattern="[ \u00a0]+,", replacement=",")
    case = rng.random(n)
    titles = pc.if_else(pa.array(case < 0.04), pc.utf8_upper(titles), titles)
    titles = pc.if_else(pa.array((case >= 0.04) & (case < 0.07)), pc.utf8_lower(titles), titles)
    trailing = pa.array(rng.random(n) < 0.03)
    titles = pc.if_else(trailing, pc.binary_join_element_wise(titles, " ", ""), titles)
    return titles, spam
