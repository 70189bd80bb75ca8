"""What to draw: the taxonomy resolved against the renderer, and the sampling of attributes.

The renderer knows five attributes natively (:data:`NATIVE_CLASSES`). A taxonomy attribute is
*native* when its name is one of those and all its classes are known; every other taxonomy
attribute is a *marker* attribute, drawn as a badge whose shape and count encode the class index.
Native attributes that the taxonomy does not ask for are still sampled (*hidden*): a dress needs a
neckline whether or not anyone tags it.

Attributes are sampled per parent (colour variants share them) from moderately imbalanced class
weights, with pairwise compatibility tables that keep a dress plausible (a gown reaches the floor,
a sweetheart neckline is strapless). Sampling order puts the taxonomy's attributes first, so a
hidden attribute adapts to a visible one rather than the other way round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

from softlines_attr.config import Taxonomy

log = logging.getLogger(__name__)

NATIVE_CLASSES: dict[str, tuple[str, ...]] = {
    "silhouette": ("fit_and_flare", "fitted", "straight", "maxi", "gown"),
    "hemline": ("mini", "knee_length", "midi", "maxi", "high_low"),
    "neck_style": (
        "sweetheart",
        "off_the_shoulder",
        "v_neck",
        "one_shoulder",
        "high_neck",
        "halter",
        "boat_neck",
        "square_neck",
        "scoop_neck",
        "collared",
        "turtle_neck",
    ),
    "sleeve_type": ("sleeveless", "cap", "short", "three_quarter", "long"),
    "pattern": (
        "solid",
        "floral",
        "stripe",
        "plaid",
        "polka_dot",
        "animal",
        "geometric",
        "ombre",
        "tie_dye",
        "paisley",
    ),
}
NATIVE_ORDER: tuple[str, ...] = ("silhouette", "hemline", "neck_style", "sleeve_type", "pattern")

# Class weights, moderately imbalanced like real catalog data (largest / smallest about 4 to 6).
BASE_WEIGHTS: dict[str, tuple[float, ...]] = {
    "silhouette": (0.34, 0.20, 0.18, 0.17, 0.11),
    "hemline": (0.30, 0.34, 0.22, 0.15, 0.13),
    "neck_style": (0.07, 0.10, 0.20, 0.05, 0.08, 0.07, 0.06, 0.07, 0.16, 0.08, 0.06),
    "sleeve_type": (0.34, 0.12, 0.25, 0.13, 0.18),
    "pattern": (0.30, 0.18, 0.10, 0.06, 0.07, 0.06, 0.07, 0.05, 0.05, 0.06),
}

# Pairwise compatibility: PAIRS[(a, b)][i, j] multiplies the weight of (a=i, b=j); 0 = implausible.
_SIL_HEM = np.array(
    [  # mini knee  midi maxi high_low
        [1.0, 1.2, 0.9, 0.0, 1.6],  # fit_and_flare
        [1.3, 1.2, 0.8, 0.0, 0.4],  # fitted
        [1.2, 1.1, 0.8, 0.0, 0.5],  # straight
        [0.0, 0.0, 0.0, 1.0, 0.0],  # maxi
        [0.0, 0.0, 0.0, 1.0, 0.3],  # gown
    ]
)
_NECK_SLEEVE = np.array(
    [  # sleeveless cap short 3/4 long
        [1.0, 0.0, 0.0, 0.0, 0.0],  # sweetheart (strapless)
        [0.6, 0.0, 1.0, 1.0, 1.0],  # off_the_shoulder
        [1.0, 1.0, 1.0, 1.0, 1.0],  # v_neck
        [1.0, 0.0, 0.0, 0.0, 0.0],  # one_shoulder
        [1.0, 1.0, 1.0, 1.0, 1.0],  # high_neck
        [1.0, 0.0, 0.0, 0.0, 0.0],  # halter
        [1.0, 1.0, 1.0, 1.0, 1.0],  # boat_neck
        [1.0, 1.0, 1.0, 1.0, 1.0],  # square_neck
        [1.0, 1.0, 1.0, 1.0, 1.0],  # scoop_neck
        [0.5, 0.6, 1.0, 1.0, 1.0],  # collared
        [0.6, 0.3, 1.0, 1.0, 1.6],  # turtle_neck
    ]
)
PAIRS: dict[tuple[str, str], np.ndarray] = {
    ("silhouette", "hemline"): _SIL_HEM,
    ("neck_style", "sleeve_type"): _NECK_SLEEVE,
}


@dataclass(frozen=True)
class AttributePlan:
    """How one attribute is sampled and drawn.

    Attributes:
        name: The attribute name.
        kind: ``native`` (in the taxonomy, drawn by shape), ``hidden`` (drawn, not in the taxonomy)
            or ``marker`` (in the taxonomy, unknown to the renderer: drawn as a badge).
        classes: The classes sampled from, in the index order used by the sampled arrays (the
            renderer's full list for native and hidden attributes, the taxonomy's for markers).
        visible: For native attributes, the taxonomy's classes (a subset of ``classes``); the
            taxonomy's classes for markers; empty for hidden ones.
        weights: Base class weights aligned with ``classes``.
        slot: For markers, the badge position slot; -1 otherwise.
    """

    name: str
    kind: Literal["native", "hidden", "marker"]
    classes: tuple[str, ...]
    visible: tuple[str, ...]
    weights: tuple[float, ...]
    slot: int = -1

    @property
    def allowed(self) -> np.ndarray:
        """A boolean mask over ``classes``: the classes that may be drawn."""
        if self.kind == "hidden":
            return np.ones(len(self.classes), dtype=bool)
        return np.array([c in self.visible for c in self.classes], dtype=bool)


@dataclass(frozen=True)
class RenderPlan:
    """The taxonomy resolved against the renderer, attributes in sampling order."""

    attributes: tuple[AttributePlan, ...]
    taxonomy: Taxonomy

    def get(self, name: str) -> AttributePlan:
        """The plan of attribute ``name``.

        Raises:
            KeyError: if no such attribute is planned.
        """
        for attr in self.attributes:
            if attr.name == name:
                return attr
        raise KeyError(name)

    @property
    def markers(self) -> tuple[AttributePlan, ...]:
        return tuple(a for a in self.attributes if a.kind == "marker")

    def render_kinds(self) -> dict[str, str]:
        """Taxonomy attribute name -> ``native`` or ``marker`` (for the summary)."""
        return {a.name: a.kind for a in self.attributes if a.kind != "hidden"}


def marker_weights(k: int) -> tuple[float, ...]:
    """Decreasing, moderately imbalanced weights for ``k`` marker classes (first/last about 1 + 0.15 k)."""
    w = 1.0 / (1.0 + 0.15 * np.arange(k))
    return tuple(float(x) for x in w / w.sum())


def resolve_plan(taxonomy: Taxonomy) -> RenderPlan:
    """Decide for every attribute whether it is drawn natively, hidden, or as a marker badge.

    Args:
        taxonomy: The taxonomy in use (default or the user's own).

    Returns:
        The plan, attributes in sampling order: the taxonomy's native attributes, then hidden
        native ones, then markers (in taxonomy order).
    """
    native: list[AttributePlan] = []
    markers: list[AttributePlan] = []
    native_names: set[str] = set()
    for attr in taxonomy.attributes:
        known = NATIVE_CLASSES.get(attr.name)
        if known is not None and set(attr.classes) <= set(known):
            native_names.add(attr.name)
            native.append(AttributePlan(attr.name, "native", known, attr.classes, BASE_WEIGHTS[attr.name]))
        else:
            if known is not None:
                log.info(
                    "attribute %r has classes the renderer does not draw (%s); drawing it as a badge",
                    attr.name,
                    sorted(set(attr.classes) - set(known)),
                )
            markers.append(
                AttributePlan(
                    attr.name,
                    "marker",
                    attr.classes,
                    attr.classes,
                    marker_weights(len(attr.classes)),
                    slot=len(markers),
                )
            )
    native.sort(key=lambda a: NATIVE_ORDER.index(a.name))
    hidden = [
        AttributePlan(name, "hidden", NATIVE_CLASSES[name], (), BASE_WEIGHTS[name])
        for name in NATIVE_ORDER
        if name not in native_names
    ]
    return RenderPlan(attributes=tuple(native + hidden + markers), taxonomy=taxonomy)


def _pair_factor(name: str, sampled: dict[str, np.ndarray]) -> np.ndarray | None:
    """The (P, K) compatibility multipliers of ``name`` against attributes sampled so far."""
    factor: np.ndarray | None = None
    for (a, b), table in PAIRS.items():
        if name == b and a in sampled:
            f = table[sampled[a]]
        elif name == a and b in sampled:
            f = table[:, sampled[b]].T
        else:
            continue
        factor = f if factor is None else factor * f
    return factor


def _repair_coverage(cls: np.ndarray, weights: np.ndarray, visible: np.ndarray, rng: np.random.Generator) -> None:
    """Make every visible class appear a minimum number of times, in place.

    Donor parents come from the most frequent classes and must allow the missing class
    (``weights[p, k] > 0``), so compatibility still holds.
    """
    n = len(cls)
    k_vis = int(visible.sum())
    if n < k_vis:
        return
    min_count = max(1, min(n // k_vis, int(0.01 * n)))
    counts = np.bincount(cls, minlength=len(visible))
    for k in np.flatnonzero(visible):
        while counts[k] < min_count:
            donors = np.flatnonzero((weights[:, k] > 0) & (counts[cls] > min_count) & (cls != k))
            if donors.size == 0:
                break
            top = counts[cls[donors]].max()
            pick = rng.choice(donors[counts[cls[donors]] == top])
            counts[cls[pick]] -= 1
            cls[pick] = k
            counts[k] += 1


def sample_attributes(
    plan: RenderPlan, n_parents: int, rng: np.random.Generator, *, repair: bool
) -> dict[str, np.ndarray]:
    """Draw every planned attribute for ``n_parents`` parents.

    Args:
        plan: The resolved plan.
        n_parents: How many parents.
        rng: The random generator (consumed in a fixed order).
        repair: Guarantee a minimum count of every visible class (the image path; the titles
            path samples millions and needs no repair).

    Returns:
        Attribute name -> int array (n_parents,) of indices into the plan's ``classes``.
    """
    sampled: dict[str, np.ndarray] = {}
    for attr in plan.attributes:
        base = np.asarray(attr.weights, dtype=np.float64) * attr.allowed
        weights = np.broadcast_to(base, (n_parents, len(base))).copy()
        factor = _pair_factor(attr.name, sampled)
        if factor is not None:
            weights *= factor
            empty = weights.sum(axis=1) <= 0
            weights[empty] = base  # the taxonomy forces an implausible pair: drop compatibility
        cdf = np.cumsum(weights, axis=1)
        cdf /= cdf[:, -1:]
        u = rng.random(n_parents)
        cls = (u[:, None] > cdf).sum(axis=1).astype(np.int64)
        cls = np.minimum(cls, len(base) - 1)
        if repair and attr.kind != "hidden":
            _repair_coverage(cls, weights, attr.allowed, rng)
        sampled[attr.name] = cls
    return sampled


def class_names(attr: AttributePlan, idx: np.ndarray) -> np.ndarray:
    """Class name strings for index array ``idx`` of attribute ``attr`` (object array)."""
    return np.asarray(attr.classes, dtype=object)[idx]
