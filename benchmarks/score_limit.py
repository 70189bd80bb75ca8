"""The scoring benchmark's limit: forward plus decode on the same cores, one single-threaded process per core.

Used by ``bench_score.py``; holds no command of its own. Every figure here is measured without Spark on
the same images and bundle the job scores:

* :func:`stage_costs`: per image, in this process, one thread: the JPEG decode (DCT-scaled), the resize
  to the store size, and the tensor (crop, normalise, CHW), wall and CPU seconds each.
* :func:`process_limit`: ``cores`` processes at once, each with one OpenMP thread, each decoding its
  share of the images and running the forward pass on them in batches (serially: decode a batch,
  forward it), the way a perfect job would use the cores. Images per second of wall time over all of
  them, and the forward's own rate (the same processes, preloaded tensors).
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np


def _cpu() -> float:
    return time.process_time()  # this process's CPU seconds (every thread), at the clock's full resolution


def stage_costs(uris: list[str], prep, max_pixels: int) -> dict[str, float]:
    """Milliseconds per image (wall and CPU) of decode, resize and tensor, one thread, in this process."""
    from PIL import Image

    from softlines_attr.images import decode_image, resize_to_store

    totals = dict.fromkeys(("decode", "resize", "tensor", "decode_cpu", "resize_cpu", "tensor_cpu"), 0.0)
    for uri in uris:
        data = Path(uri).read_bytes()
        w0, c0 = time.perf_counter(), _cpu()
        source = Image.open(Path(uri)).size  # these JPEGs carry no EXIF rotation: the header's size is upright
        img = decode_image(data, max_pixels=max_pixels, target=prep.store_size, mode=prep.resize_mode)
        w1, c1 = time.perf_counter(), _cpu()
        img = resize_to_store(img, prep.store_size, prep.resize_mode, source)
        w2, c2 = time.perf_counter(), _cpu()
        prep.tensor(img)
        w3, c3 = time.perf_counter(), _cpu()
        for name, (a, b, ca, cb) in {
            "decode": (w0, w1, c0, c1),
            "resize": (w1, w2, c1, c2),
            "tensor": (w2, w3, c2, c3),
        }.items():
            totals[name] += b - a
            totals[f"{name}_cpu"] += cb - ca
    return {k: round(1000 * v / max(1, len(uris)), 3) for k, v in totals.items()}


def _worker(args: tuple[str, list[str], str, int, int]) -> dict[str, float]:
    bundle_dir, uris, tensors_path, batch, max_pixels = args
    for key in ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[key] = "1"
    from softlines_attr.model.bundle import load_bundle
    from softlines_attr.model.predictor import Predictor

    bundle = load_bundle(Path(bundle_dir))
    prep = bundle.manifest.preprocessing
    pred = Predictor(bundle, batch)
    tensors = np.load(tensors_path)
    pred.predict(tensors[:batch])  # warm: MKL-DNN primitives made before any timing
    w0, c0 = time.perf_counter(), _cpu()
    pred.predict(tensors)
    w1, c1 = time.perf_counter(), _cpu()
    for start in range(0, len(uris), batch):
        x = np.stack([prep.network_input(Path(u).read_bytes(), max_pixels) for u in uris[start : start + batch]])
        pred.predict(x)
    w2, c2 = time.perf_counter(), _cpu()
    return {
        "forward_images": len(tensors),
        "forward_s": w1 - w0,
        "forward_cpu_s": c1 - c0,
        "pipeline_images": len(uris),
        "pipeline_s": w2 - w1,
        "pipeline_cpu_s": c2 - c1,
    }


def process_limit(bundle_dir: Path, uris: list[str], tensors: np.ndarray, batch: int, cores: int, work: Path) -> dict:
    """``cores`` single-threaded processes at once: the forward on preloaded tensors, then decode + forward of
    their share of ``uris``. Images/s over all processes (wall: the slowest process) and CPU ms per image."""
    from softlines_attr.config import load_config

    max_pixels = load_config().images.max_pixels
    work.mkdir(parents=True, exist_ok=True)
    path = work / "limit-tensors.npy"
    np.save(path, tensors)
    shares = [uris[i::cores] for i in range(cores)]
    args = [(str(bundle_dir), share, str(path), batch, max_pixels) for share in shares]
    with ProcessPoolExecutor(cores) as pool:
        results = list(pool.map(_worker, args))
    fwd_n = sum(r["forward_images"] for r in results)
    pipe_n = sum(r["pipeline_images"] for r in results)
    return {
        "forward_1thread_x_cores": fwd_n / max(r["forward_s"] for r in results),
        "forward_cpu_ms_per_image": 1000 * sum(r["forward_cpu_s"] for r in results) / fwd_n,
        "decode_forward_1thread_x_cores": pipe_n / max(r["pipeline_s"] for r in results),
        "decode_forward_cpu_ms_per_image": 1000 * sum(r["pipeline_cpu_s"] for r in results) / pipe_n,
    }
