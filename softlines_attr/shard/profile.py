"""Where a shard task's time goes: a per-stage profile, per task and summed over the run.

Each shard task fills one :class:`ShardProfile` and reports it in its stats row; the driver sums the
tasks' profiles into the run summary's ``profile_seconds`` (:func:`sum_shard_profiles`). Wall
seconds per stage, and CPU seconds (the thread's own clock) where waiting for a core or for the GIL
must be told apart from work. The stages, in the order an image meets them:

* on the fetch threads, per image: ``fetch`` (the file's bytes read), ``cpu_wait`` (waiting for one of
  the task's CPU slots), ``decode`` (header, DCT-scaled JPEG decode, RGB, orientation), ``resize``
  (to the store size), ``encode`` (the JPEG a record stores); ``*_cpu`` the same threads' CPU time;
* on the task's thread: ``input`` (the partition's rows received and sorted), ``wait`` (waiting for the
  next image in record-id order), ``record`` (the record packed, framed, hashed and written to the
  ``.rec``/``.idx``), ``rows_out`` (the time Spark spends taking the task's result rows between two
  of them), ``commit`` (shard files closed and renamed or uploaded);
* ``task``: the task's wall time; ``task_cpu``: the worker process's CPU time during the task (every
  thread), so ``task_cpu`` minus the stages' CPU is the overhead no stage accounts for.

Fetch-thread stages overlap the task thread's (that is the point of the threads): the fetch-thread
sums are per image, the task-thread ones add up to at most ``task``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from softlines_attr.stage_profile import profile_dict, sum_stage_seconds

log = logging.getLogger(__name__)

#: The fetch threads' stages (each with a ``*_cpu`` twin), in the order an image meets them.
IMAGE_STAGES = ("fetch", "cpu_wait", "decode", "resize", "encode")


class Laps:
    """A stopwatch of one thread: each :meth:`lap` adds the wall and thread-CPU seconds since the last to a stage.

    Args:
        times: Stage name -> seconds, added to (``<stage>`` wall, ``<stage>_cpu`` CPU).
    """

    def __init__(self, times: dict[str, float]) -> None:
        self.times = times
        self.wall = time.perf_counter()
        self.cpu = time.thread_time()

    def lap(self, stage: str) -> None:
        """Charge the time since the previous lap (or the start) to ``stage``."""
        wall, cpu = time.perf_counter(), time.thread_time()
        self.times[stage] = self.times.get(stage, 0.0) + wall - self.wall
        self.times[f"{stage}_cpu"] = self.times.get(f"{stage}_cpu", 0.0) + cpu - self.cpu
        self.wall, self.cpu = wall, cpu


@dataclass
class ShardProfile:
    """A shard task's seconds per stage (see the module docstring)."""

    fetch: float = 0.0
    fetch_cpu: float = 0.0
    cpu_wait: float = 0.0
    cpu_wait_cpu: float = 0.0
    decode: float = 0.0
    decode_cpu: float = 0.0
    resize: float = 0.0
    resize_cpu: float = 0.0
    encode: float = 0.0
    encode_cpu: float = 0.0
    input: float = 0.0
    wait: float = 0.0
    record: float = 0.0
    rows_out: float = 0.0
    commit: float = 0.0
    task: float = 0.0
    task_cpu: float = 0.0

    def add_image(self, times: Mapping[str, float]) -> None:
        """Add one image's fetch-thread times (a :class:`Laps` dict)."""
        for key, value in times.items():
            setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, float]:
        """Stage -> seconds, rounded, for the task's stats row."""
        return profile_dict(self)


def sum_shard_profiles(profiles: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """The stages' seconds summed over tasks (a stage missing from a task counts 0), in :class:`ShardProfile`'s
    order."""
    return sum_stage_seconds(ShardProfile, profiles)
