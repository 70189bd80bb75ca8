"""The executor side of the shard job: one partition in, shards and result rows out.

Each task fetches its rows' images on ``fetch_threads`` threads (one storage client for the task),
decodes and re-encodes them with at most ``task cpus + decode_threads_extra`` images in the CPU stage at
once (Pillow releases the GIL; the extra one keeps a core busy while another thread runs Python), and
appends the records in record-id order to a ``.rec``/``.idx`` pair under a temporary name. A finished
shard is committed by renaming both files to their deterministic names (local) or uploading them to
those keys (S3, multipart; an object appears whole or not at all), so a retried or speculative attempt
rewrites the same bytes under the same names and never leaves a duplicate or a torn shard. Results come
back as tagged tuples (see :data:`KINDS`).
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from softlines_attr.config import ImageConfig, ShardConfig
from softlines_attr.images.decode import ImageError
from softlines_attr.images.encode import PreparedImage, prepare_for_shard
from softlines_attr.io.fetch import Fetcher, FetchError, ordered_map
from softlines_attr.io.storage import S3Storage, join_uri, parse_uri
from softlines_attr.shard.plan import PartSpec
from softlines_attr.shard.profile import Laps, ShardProfile
from softlines_attr.shard.recordio import MAX_RECORD_BYTES, IndexedRecordWriter, pack_image_record, pad_labels

log = logging.getLogger(__name__)

#: Tags of the tuples a task yields: an index row, a reject row, a shard row, the task's stats.
KINDS = ("index", "reject", "shard", "stats")


@dataclass(frozen=True)
class TaskSpec:
    """Everything a task needs (pickled into the closure; no Spark objects).

    Attributes:
        mode: ``base`` (label arrays of ``label_width``) or ``refine`` (one class label).
        label_width: Label slots per base record.
        shards_uri: The staging folder the shards go to (local path or s3:// URI).
        parts: Part specs, indexed by partition.
        images: ``[images]`` config.
        shard: ``[shard]`` config.
        endpoint_url: S3 endpoint override seen on the driver (None: boto3's default).
    """

    mode: str
    label_width: int
    shards_uri: str
    parts: tuple[PartSpec, ...]
    images: ImageConfig
    shard: ShardConfig
    endpoint_url: str | None = None


def shard_name(split: str, part: int, seq: int) -> str:
    """The shard's path under the shards folder, without suffix: ``<split>/<split>-<part>-<seq>``."""
    return f"{split}/{split}-{part:05d}-{seq:03d}"


class _ShardSink:
    """Writes one part's shard files, rolling over at ``max_shard_bytes``, committing each when done."""

    def __init__(self, spec: TaskSpec, part: PartSpec, attempt: int, s3: S3Storage | None) -> None:
        self.spec = spec
        self.part = part
        self.s3 = s3
        self.local_root = None if s3 is not None else parse_uri(spec.shards_uri).key
        self.tmp_dir = tempfile.mkdtemp(prefix="shard-") if s3 is not None else None
        self.tag = f"attempt{attempt}-{uuid.uuid4().hex[:8]}"
        self.seq = -1
        self.writer: IndexedRecordWriter | None = None
        self.files: tuple = ()
        self.first_id = -1
        self.last_id = -1
        self.pending: list[tuple] = []  # shard rows of files closed by a rollover, not yet yielded

    def _paths(self, name: str) -> tuple[str, str, str, str]:
        if self.local_root is not None:
            final_rec = os.path.join(self.local_root, name + ".rec")
            folder, base = os.path.split(final_rec)
            os.makedirs(folder, exist_ok=True)
            return (
                os.path.join(folder, f".{base}.{self.tag}.tmp"),
                os.path.join(folder, f".{base[:-4]}.idx.{self.tag}.tmp"),
                final_rec,
                final_rec[:-4] + ".idx",
            )
        assert self.tmp_dir is not None
        stem = os.path.join(self.tmp_dir, name.replace("/", "_"))
        return (
            stem + ".rec",
            stem + ".idx",
            join_uri(self.spec.shards_uri, name + ".rec"),
            join_uri(self.spec.shards_uri, name + ".idx"),
        )

    def _open(self) -> None:
        self.seq += 1
        name = shard_name(self.part.split, self.part.part, self.seq)
        tmp_rec, tmp_idx, final_rec, final_idx = self._paths(name)
        rec, idx = open(tmp_rec, "wb"), open(tmp_idx, "wb")
        self.files = (name, rec, idx, tmp_rec, tmp_idx, final_rec, final_idx)
        self.writer = IndexedRecordWriter(rec, idx)
        self.first_id = -1

    def write(self, record_id: int, payload: bytes) -> tuple[str, int]:
        """Append a record; returns (shard path relative to the output, byte offset)."""
        if (
            self.writer is not None
            and self.writer.records
            and self.writer.rec_bytes + self.writer.framed_size(payload) > self.spec.shard.max_shard_bytes
        ):
            self.pending.append(self.close_current())
        if self.writer is None:
            self._open()
        assert self.writer is not None
        offset = self.writer.write(record_id, payload)
        if self.first_id < 0:
            self.first_id = record_id
        self.last_id = record_id
        return "shards/" + self.files[0] + ".rec", offset

    def flush(self) -> None:
        """Flush the open files."""
        if self.writer is not None:
            self.files[1].flush()
            self.files[2].flush()

    def close_current(self) -> tuple:
        """Close and commit the open shard; returns its shard row."""
        assert self.writer is not None
        name, rec, idx, tmp_rec, tmp_idx, final_rec, final_idx = self.files
        rec.close()
        idx.close()
        if self.s3 is not None:
            self.s3.upload_file(tmp_idx, final_idx)
            self.s3.upload_file(tmp_rec, final_rec)
            os.remove(tmp_rec)
            os.remove(tmp_idx)
        else:
            os.replace(tmp_idx, final_idx)
            os.replace(tmp_rec, final_rec)
        w = self.writer
        row = (
            "shard",
            (
                "shards/" + name + ".rec",
                "shards/" + name + ".idx",
                self.part.split,
                self.part.part,
                self.seq,
                w.records,
                w.rec_bytes,
                w.rec_sha256,
                w.idx_bytes,
                w.idx_sha256,
                self.first_id,
                self.last_id,
            ),
        )
        self.writer = None
        return row

    def discard(self) -> None:
        """Remove temporary files (on an exception)."""
        if self.writer is not None:
            for fh in self.files[1:3]:
                fh.close()
            for path in self.files[3:5]:
                if os.path.exists(path):
                    os.remove(path)
        if self.tmp_dir:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _task_cpus() -> int:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    try:
        return max(1, int(ctx.cpus())) if ctx is not None else 1
    except Exception:
        return 1


def _attempt() -> int:
    from pyspark import TaskContext

    ctx = TaskContext.get()
    return ctx.attemptNumber() if ctx is not None else 0


def shard_partition(spec: TaskSpec, partition: int, rows: Iterable[tuple[int, tuple]]) -> Iterator[tuple[str, tuple]]:
    """Write the shard(s) of one partition; yield index, reject, shard and stats tuples.

    The stats tuple ends with the task's :class:`~softlines_attr.shard.profile.ShardProfile` as a dict.

    Args:
        spec: The task spec.
        partition: The Spark partition index (= the part's index in ``spec.parts``).
        rows: ``(partition, (record_id, asin, image_uri, labels))`` pairs.
    """
    started = time.monotonic()
    started_wall = time.time()
    started_cpu = time.process_time()
    profile = ShardProfile()
    clock = time.perf_counter()
    items = sorted((value for _, value in rows), key=lambda v: v[0])
    profile.input = time.perf_counter() - clock
    part = spec.parts[partition]
    fetcher = Fetcher(spec.shard, spec.endpoint_url)
    s3 = fetcher.s3 if parse_uri(spec.shards_uri).scheme == "s3" else None
    attempt = _attempt()
    sink = _ShardSink(spec, part, attempt, s3)
    # the task's cores decode, plus decode_threads_extra: while one decoding thread runs Python (header, EXIF) or waits
    # for its file, another keeps the core busy (at 8,000 photos on 2 cores: 86 % -> 94 % busy, the same bytes)
    cpu_slots = threading.Semaphore(_task_cpus() + spec.shard.decode_threads_extra)
    images = spec.images
    image_times: list[dict[str, float]] = []  # one per image, filled on the fetch threads

    def work(item: tuple) -> object:
        times: dict[str, float] = {}
        image_times.append(times)
        laps = Laps(times)
        try:
            data = fetcher.fetch(item[2])
        finally:
            laps.lap("fetch")
        with cpu_slots:
            laps.lap("cpu_wait")
            return prepare_for_shard(data, images, laps.lap)

    threads = spec.shard.fetch_threads
    try:
        results = ordered_map(work, items, threads=threads, window=2 * threads)
        while True:
            clock = time.perf_counter()
            pair = next(results, None)
            profile.wait += time.perf_counter() - clock
            if pair is None:
                break
            out = _record_rows(spec, part, sink, *pair, profile)
            for row in out:
                clock = time.perf_counter()
                yield row
                profile.rows_out += time.perf_counter() - clock
        if sink.writer is not None:
            clock = time.perf_counter()
            last = sink.close_current()
            profile.commit += time.perf_counter() - clock
            yield last
    except BaseException:
        sink.discard()
        raise
    if sink.tmp_dir:
        shutil.rmtree(sink.tmp_dir, ignore_errors=True)
    for times in image_times:
        profile.add_image(times)
    profile.task = time.monotonic() - started
    profile.task_cpu = time.process_time() - started_cpu
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield (
        "stats",
        (
            partition,
            len(items),
            round(profile.task, 3),
            peak_kb,
            attempt,
            started_wall,
            time.time(),
            profile.as_dict(),
        ),
    )


def _record_rows(
    spec: TaskSpec,
    part: PartSpec,
    sink: _ShardSink,
    item: tuple,
    result: PreparedImage | BaseException,
    profile: ShardProfile,
) -> list[tuple[str, tuple]]:
    """One image's rows: a reject, or the record written to the shard and its index row (after any shard row of
    a file closed by a rollover)."""
    record_id, asin, uri, labels = item
    if isinstance(result, BaseException):
        if isinstance(result, FetchError):
            return [("reject", (asin, uri, part.split, "fetch", result.reason, str(result)))]
        if isinstance(result, ImageError):
            return [("reject", (asin, uri, part.split, "decode", result.reason, str(result)))]
        if isinstance(result, Exception):
            return [("reject", (asin, uri, part.split, "decode", "decode_error", f"{type(result).__name__}: {result}"))]
        raise result
    clock = time.perf_counter()
    label = float(labels[0]) if spec.mode == "refine" else pad_labels(labels, spec.label_width)
    payload = pack_image_record(label, record_id, result.data)
    if len(payload) > MAX_RECORD_BYTES:
        return [
            (
                "reject",
                (
                    asin,
                    uri,
                    part.split,
                    "encode",
                    "too_large",
                    f"expected a record under {MAX_RECORD_BYTES} bytes, found {len(payload)}",
                ),
            )
        ]
    shard, offset = sink.write(record_id, payload)
    out: list[tuple[str, tuple]] = list(sink.pending)
    sink.pending.clear()
    out.append(
        ("index", (asin, part.split, shard, record_id, offset, result.width, result.height, result.passed_through))
    )
    profile.record += time.perf_counter() - clock
    return out
