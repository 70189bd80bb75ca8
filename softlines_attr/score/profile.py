"""Where a scoring task's time goes: a per-stage profile, summed per task and over the run.

Each scoring task fills one :class:`TaskProfile` (wall seconds per stage, plus CPU seconds where a
thread's own CPU clock tells them apart from waiting for a core) and reports it in its stats row;
the driver sums the tasks' profiles into the run summary's ``profile_seconds`` with
:func:`sum_profiles`. The stages, in the order an image meets them:

* ``model_load``: the task's models rebuilt or taken from the process's cache and bound (in a new worker
  this includes importing MXNet); ``model_load_cpu`` the process's CPU time for it.
* ``fetch``, ``decode``, ``tensor``: per image, on the fetch threads or, decoding in turn
  (``score.decode_overlap``), the forward loop's (bytes read; decoded and resized to the store size;
  cropped to uint8 pixels); ``*_cpu`` the same threads' CPU time for them.
* ``wait``: the forward loop waiting for a batch of prepared images (the overlap's miss).
* ``stack``: the batch's crops stacked and normalised at once (float32, CHW); ``forward``: the bound
  predictor's forward pass; ``rows_out``: top-k and the task's output rows; ``arrow_out``: the rows as an Arrow batch.
* ``task_cpu``: the worker process's CPU time during the task (every thread: fetch, decode, MXNet's).
"""

from __future__ import annotations

import dataclasses
import logging
import resource
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from softlines_attr.stage_profile import profile_dict, sum_stage_seconds

log = logging.getLogger(__name__)


def process_cpu_seconds() -> float:
    """User + system CPU seconds of this process so far (every thread)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class ImageTimes:
    """One image's preparation on a fetch thread: wall and thread-CPU seconds per stage."""

    fetch: float = 0.0
    decode: float = 0.0
    tensor: float = 0.0
    fetch_cpu: float = 0.0
    decode_cpu: float = 0.0
    tensor_cpu: float = 0.0


@dataclass
class TaskProfile(ImageTimes):
    """A scoring task's seconds per stage (see the module docstring): its images' :class:`ImageTimes` summed, and
    the task's own stages."""

    model_load: float = 0.0
    model_load_cpu: float = 0.0
    wait: float = 0.0
    stack: float = 0.0
    forward: float = 0.0
    rows_out: float = 0.0
    arrow_out: float = 0.0
    task_cpu: float = 0.0

    def add_image(self, times: ImageTimes) -> None:
        """Add one prepared image's fetch-thread times."""
        for field in dataclasses.fields(ImageTimes):
            setattr(self, field.name, getattr(self, field.name) + getattr(times, field.name))

    def as_dict(self) -> dict[str, float]:
        """Stage -> seconds, rounded, for the task's stats row."""
        return profile_dict(self)


def sum_profiles(profiles: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The stages' seconds summed over tasks (a stage missing from a task counts 0), in :class:`TaskProfile`'s order."""
    return sum_stage_seconds(TaskProfile, profiles)


def cache_summary(stats: Iterable[Mapping], conf: Any) -> dict[str, Any]:
    """The run summary's ``model_cache``: the bounds (``score.model_cache_models`` / ``_mb``) and, over the
    tasks' Python workers, the most models and MB any one held, and the evictions seen."""
    caches = [s["model_cache"] for s in stats if "model_cache" in s]
    return {
        "max_models": conf.model_cache_models,
        "max_mb": conf.model_cache_mb,
        "models_held_max": max((c["peak_models"] for c in caches), default=0),
        "mb_held_max": max((c["peak_mb"] for c in caches), default=0.0),
        "evictions_seen": max((c["evictions"] for c in caches), default=0),
    }
