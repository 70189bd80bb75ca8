"""The promotion gate as data: a candidate's per-attribute val metrics against the current model's.

A candidate passes when, for every attribute it predicts,

* its accuracy is not lower than the current model's by more than ``promote.max_accuracy_drop`` percentage points
  (only for attributes the current model predicts: both are measured on the same val split), and
* its coverage at the attribute's target precision (``evaluate.target_precision``) is at least
  ``promote.min_coverage``;

and it predicts every attribute the current model predicts (it replaces the whole model in the registry, so a
missing head would take an attribute out of the index). Without a current model the candidate is promoted; the
decision says so. Pure Python: the driver (:mod:`softlines_attr.promote.job`) measures, this module decides.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from softlines_attr.config import PromoteConfig

log = logging.getLogger(__name__)

_EPS = 1e-9  # accuracies are ratios of counts: a drop of exactly the allowed points passes


@dataclass(frozen=True)
class HeadScore:
    """One head's val metrics that the gate compares.

    Attributes:
        attribute: The taxonomy attribute the head predicts.
        head: The head's name in its bundle.
        accuracy: Top-1 accuracy on the val split, 0..1.
        coverage: Share of val images kept at the lowest threshold reaching ``target_precision`` (0 when none does).
        target_precision: The precision the coverage is measured at.
        records: Val images with a tag for the attribute.
    """

    attribute: str
    head: str
    accuracy: float
    coverage: float
    target_precision: float
    records: int


@dataclass(frozen=True)
class GateCheck:
    """One check of the gate.

    Attributes:
        attribute: The attribute checked.
        check: ``accuracy`` (against the current model), ``coverage`` (the floor) or ``attribute`` (a head the
            current model has).
        passed: Whether the candidate passes it.
        candidate: The candidate's value (None when it has no head for the attribute).
        limit: The lowest value that passes (None for ``attribute``).
        message: What was expected and what was found.
    """

    attribute: str
    check: str
    passed: bool
    candidate: float | None
    limit: float | None
    message: str


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict.

    Attributes:
        promote: Whether the candidate becomes the current model.
        reasons: Why: the failed checks' messages, or why it passed.
        checks: Every check made, in attribute order.
    """

    promote: bool
    reasons: tuple[str, ...]
    checks: tuple[GateCheck, ...]


def _coverage_check(cand: HeadScore, settings: PromoteConfig) -> GateCheck:
    passed = cand.coverage + _EPS >= settings.min_coverage
    return GateCheck(
        attribute=cand.attribute,
        check="coverage",
        passed=passed,
        candidate=cand.coverage,
        limit=settings.min_coverage,
        message=(
            f"{cand.attribute}: coverage at precision {cand.target_precision:.2f} is {cand.coverage:.3f}; expected at "
            f"least promote.min_coverage {settings.min_coverage:.3f}"
        ),
    )


def _accuracy_check(cand: HeadScore, cur: HeadScore, settings: PromoteConfig) -> GateCheck:
    limit = cur.accuracy - settings.max_accuracy_drop / 100.0
    passed = cand.accuracy + _EPS >= limit
    drop = 100.0 * (cur.accuracy - cand.accuracy)
    return GateCheck(
        attribute=cand.attribute,
        check="accuracy",
        passed=passed,
        candidate=cand.accuracy,
        limit=limit,
        message=(
            f"{cand.attribute}: accuracy {100 * cand.accuracy:.2f}% vs the current model's {100 * cur.accuracy:.2f}% "
            f"({'-' if drop > 0 else '+'}{abs(drop):.2f} points); expected at most "
            f"promote.max_accuracy_drop {settings.max_accuracy_drop:g} points lower"
        ),
    )


def apply_gate(
    candidate: Mapping[str, HeadScore],
    current: Mapping[str, HeadScore] | None,
    settings: PromoteConfig,
    *,
    current_attributes: Iterable[str] = (),
    candidate_attributes: Iterable[str] = (),
) -> GateDecision:
    """Decide whether ``candidate`` replaces the current model.

    Args:
        candidate: The candidate's scores by attribute (val split).
        current: The current model's scores by attribute on the same split; None when there is no current model.
        settings: ``conf.promote``.
        current_attributes: Every attribute the current model predicts (its manifest's heads), also those the
            shards do not hold.
        candidate_attributes: Every attribute the candidate predicts (its manifest's heads).

    Returns:
        The decision with every check and the reasons.
    """
    if current is None:
        return GateDecision(
            promote=True,
            reasons=(
                "no current model in the registry: the candidate is promoted without a comparison (its checks are "
                "reported, not applied)",
            ),
            checks=tuple(_coverage_check(c, settings) for _, c in sorted(candidate.items())),
        )
    checks = [
        GateCheck(
            attribute,
            "attribute",
            False,
            None,
            None,
            f"{attribute}: the current model predicts it; expected the candidate to predict it too (promoting would "
            "take it out of the index), found no head for it",
        )
        for attribute in sorted((set(current_attributes) | set(current)) - set(candidate) - set(candidate_attributes))
    ]
    for attribute, cand in sorted(candidate.items()):
        if attribute in current:
            checks.append(_accuracy_check(cand, current[attribute], settings))
        checks.append(_coverage_check(cand, settings))
    failed = [c.message for c in checks if not c.passed]
    if failed:
        return GateDecision(promote=False, reasons=tuple(failed), checks=tuple(checks))
    return GateDecision(
        promote=True,
        reasons=(
            f"every check passed ({len(checks)}): no attribute's accuracy more than {settings.max_accuracy_drop:g} "
            f"points below the current model's, coverage at target precision at least {settings.min_coverage:g}",
        ),
        checks=tuple(checks),
    )
