"""The catalog's image files: their paths, the worker that draws, encodes and writes one, the pool.

Each image depends only on its task (generators keyed by the seed and the parent or product
index), so the files are byte-identical whatever the number of worker processes.
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from softlines_attr.synthetic.draw import encode, render
from softlines_attr.synthetic.shoot import RenderTask, sample_shoot

IMAGE_DIR = "images"


def image_path(out_dir: Path, index: int, asin: str, kind: str) -> Path:
    """Where product ``index``'s image goes: ``images/NNN/ASIN.jpg`` (``.png`` for the RGBA product)."""
    suffix = ".png" if kind == "png_alpha" else ".jpg"
    return out_dir / IMAGE_DIR / f"{index // 1000:03d}" / f"{asin}{suffix}"


def render_and_write(task: RenderTask) -> tuple[int, int, int, int, str]:
    """Worker: draw, encode and write one image.

    Args:
        task: The render task (``task.path`` must be set).

    Returns:
        ``(index, width, height, bytes written, kind)``.
    """
    shoot = sample_shoot(task)
    image, alpha = render(task, shoot)
    data = encode(task, image, alpha, shoot.jpeg_quality)
    path = Path(task.path)  # type: ignore[arg-type]  # image tasks always carry a path; only titles-only tasks do not
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return task.index, image.width, image.height, len(data), task.kind


def run_tasks(tasks: list[RenderTask], workers: int) -> list[tuple[int, int, int, int, str]]:
    """Render tasks in order, in-process for one worker, else in a spawn pool."""
    if workers <= 1 or len(tasks) < 8:
        return [render_and_write(t) for t in tasks]
    chunksize = max(1, min(32, len(tasks) // (workers * 8)))
    ctx = multiprocessing.get_context("spawn")  # no inherited threads or JVM handles
    with ctx.Pool(processes=workers) as pool:
        return list(pool.imap(render_and_write, tasks, chunksize=chunksize))
