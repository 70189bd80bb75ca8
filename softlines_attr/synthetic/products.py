"""Sampling products: parents and their colour variants, product types, attributes, colours and ids.

Attributes are drawn per parent with the render plan (:func:`plan.sample_attributes`), so colour
variants share them; colours are distinct within a parent; ids come from :mod:`ids`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from softlines_attr.synthetic.ids import asin_strings
from softlines_attr.synthetic.plan import RenderPlan, sample_attributes

# Colour variants per parent: 1 to 6, mostly few.
PARENT_SIZE_WEIGHTS = (0.35, 0.22, 0.16, 0.12, 0.08, 0.07)
NON_DRESS_TYPES: tuple[str, ...] = ("SKIRT", "SHIRT")
PRODUCT_TYPES: tuple[str, ...] = ("DRESS",) + NON_DRESS_TYPES


def parent_sizes(n: int, rng: np.random.Generator) -> np.ndarray:
    """Split ``n`` products into parents of 1 to 6 colour variants.

    Args:
        n: Number of products (>= 1).
        rng: The random generator.

    Returns:
        An int array of parent sizes summing to ``n``.
    """
    sizes = rng.choice(len(PARENT_SIZE_WEIGHTS), size=max(n, 1), p=PARENT_SIZE_WEIGHTS) + 1
    ends = np.cumsum(sizes)
    last = int(np.searchsorted(ends, n))
    sizes = sizes[: last + 1].copy()
    sizes[-1] -= int(ends[last] - n)
    return sizes


@dataclass(frozen=True)
class ProductSample:
    """Sampled products (numpy arrays, one entry per product unless noted).

    Attributes:
        parent: Parent index of each product (0-based, local to the sample).
        variant: Variant number of each product within its parent.
        product_type: Index into :data:`PRODUCT_TYPES`.
        colour: Index into ``vocab.COLOURS`` (distinct within a parent).
        attrs: Attribute name -> class index into the plan's ``classes``.
        asin: ``S10`` ids.
        parent_asin: ``S10`` ids of the parent.
        parent_null: True where the catalog leaves ``parent_asin`` null (single-variant parents).
        n_parents: Number of parents.
    """

    parent: np.ndarray
    variant: np.ndarray
    product_type: np.ndarray
    colour: np.ndarray
    attrs: dict[str, np.ndarray]
    asin: np.ndarray
    parent_asin: np.ndarray
    parent_null: np.ndarray
    n_parents: int

    def __len__(self) -> int:
        return int(self.parent.size)


# share of single-variant parents whose parent_asin is left null (the contract: null -> the asin)
NULL_PARENT_SHARE = 0.05


def sample_products(
    n: int,
    rng: np.random.Generator,
    plan: RenderPlan,
    *,
    seed: int,
    non_dress_share: float,
    code_offset: int = 0,
    repair: bool,
) -> ProductSample:
    """Sample ``n`` products: parents, product types, attributes, colours and ids.

    Args:
        n: Number of products (>= 1).
        rng: The random generator (consumed in a fixed order).
        plan: The resolved render plan.
        seed: The catalog seed (for the ids).
        non_dress_share: Share of parents that are not dresses.
        code_offset: Global index of the first product (chunks of the titles path), so ids stay
            unique across chunks.
        repair: Guarantee every visible class appears (see :func:`sample_attributes`).

    Returns:
        The sampled products.
    """
    from softlines_attr.synthetic.vocab import COLOURS

    sizes = parent_sizes(n, rng)
    n_parents = int(sizes.size)
    parent = np.repeat(np.arange(n_parents), sizes)
    starts = np.cumsum(sizes) - sizes
    variant = np.arange(n) - starts[parent]
    n_other = int(round(non_dress_share * n_parents))
    ptype_parent = np.zeros(n_parents, dtype=np.int64)
    other = rng.permutation(n_parents)[:n_other]
    ptype_parent[other] = 1 + rng.integers(0, len(NON_DRESS_TYPES), size=n_other)
    attrs_parent = sample_attributes(plan, n_parents, rng, repair=repair)
    colour_keys = rng.random((n_parents, len(COLOURS)))
    colour_perm = np.argsort(colour_keys, axis=1)
    colour = colour_perm[parent, variant]
    null_parent = (sizes == 1) & (rng.random(n_parents) < NULL_PARENT_SHARE)
    codes = np.arange(n, dtype=np.int64) + code_offset
    asin = asin_strings(2 * codes, seed)
    parent_asin = asin_strings(2 * (np.arange(n_parents, dtype=np.int64) + code_offset) + 1, seed)[parent]
    return ProductSample(
        parent=parent,
        variant=variant,
        product_type=ptype_parent[parent],
        colour=colour,
        attrs={name: cls[parent] for name, cls in attrs_parent.items()},
        asin=asin,
        parent_asin=parent_asin,
        parent_null=null_parent[parent],
        n_parents=n_parents,
    )
