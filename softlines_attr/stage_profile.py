"""Per-stage task profiles, shared by the shard and scoring tasks: a profile dataclass as a stats-row dict,
and the tasks' profiles summed into a run summary's ``profile_seconds``.

The stages themselves are each task's own (:mod:`softlines_attr.shard.profile`,
:mod:`softlines_attr.score.profile`); this module only knows that a profile is a dataclass of float seconds.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

#: Figures rounded to this many decimals in a task's stats row.
DECIMALS = 4
#: Figures rounded to this many decimals in a run summary.
SUMMARY_DECIMALS = 3


def profile_dict(profile: Any) -> dict[str, float]:
    """Stage -> seconds of a profile dataclass, rounded, for the task's stats row."""
    return {k: round(v, DECIMALS) for k, v in dataclasses.asdict(profile).items()}


def sum_stage_seconds(profile_type: type, profiles: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The stages' seconds summed over tasks, in ``profile_type``'s field order.

    A stage missing from a task's profile counts 0; a key that is not a field of ``profile_type`` is ignored.
    """
    total = dict.fromkeys((f.name for f in dataclasses.fields(profile_type)), 0.0)
    for profile in profiles:
        for key, value in profile.items():
            if key in total:
                total[key] += float(value)
    return {k: round(v, SUMMARY_DECIMALS) for k, v in total.items()}
