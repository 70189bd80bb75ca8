"""Distributed (ps-lite ``dist_sync``) training on CPU: real scheduler, server and worker processes on loopback.

The shards give every record its own title word (word i = record i), so the labels a worker read
say which records it read. The train records are laid out so that a byte-balanced split into two
parts gives the parts very different record counts (large images first, small ones after).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from PIL import Image

from softlines_attr.config import PipelineConfig
from softlines_attr.model.bundle import load_bundle
from softlines_attr.model.data import record_iter
from softlines_attr.model.distributed.argv import replace_option
from softlines_attr.model.distributed.barrier import CheckpointUploader, _download_checkpoints, _upload_bundle
from softlines_attr.model.distributed.dump import label_ids
from softlines_attr.model.distributed.kvstore import Workers
from softlines_attr.model.distributed.launch import launch_local
from softlines_attr.model.distributed.parts import check_train_parts, fixed_batches, part_record_counts
from softlines_attr.model.errors import DistributedLaunchError, TrainInputError
from softlines_attr.model.train import train
from softlines_attr.shard.contract import read_shard_set
from softlines_attr.shard.recordio import pack_image_record, pad_labels
from softlines_attr.train_config import TrainConfig

STORE = 40
LABEL_WIDTH = 2
TRAIN_LARGE, TRAIN_SMALL, VAL = 8, 16, 8
TRAIN = TRAIN_LARGE + TRAIN_SMALL
# a small, fast job: 2 workers x 3 batches of 4 per epoch (ceil(24 / 2 / 4)), 2 epochs
# a step schedule without warm-up: a 1-epoch run is then the first epoch of the 2-epoch run (resume tests)
TRAIN_ARGS = [
    "--epochs",
    "2",
    "--batch-size",
    "4",
    "--width",
    "0.125",
    "--input-size",
    "32",
    "--threads",
    "1",
    "--lr",
    "0.02",
    "--seed",
    "3",
    "--lr-schedule",
    "step",
    "--warmup-epochs",
    "0",
]
ROLE_ENV = {"OMP_NUM_THREADS": "1", "MXNET_CPU_WORKER_NTHREADS": "1"}


def _jpeg(rng: np.random.Generator, noisy: bool) -> bytes:
    """A large (noise, high quality) or a small (flat colour) JPEG."""
    if noisy:
        arr = rng.integers(0, 256, (STORE, STORE + 8, 3), dtype=np.uint8)
    else:
        arr = np.full((STORE, STORE + 8, 3), rng.integers(0, 256, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=98 if noisy else 50)
    return buf.getvalue()


def write_id_shards(out: Path, seed: int = 0) -> Path:
    """Base shards (shard job layout) where record i's only title word is i: 24 train records (8 large, then 16
    small), 8 val."""
    from softlines_attr.shard.contract import ShardSetWriter

    rng = np.random.default_rng(seed)
    num_classes = TRAIN + VAL
    writer = ShardSetWriter(
        out,
        mode="base",
        label_width=LABEL_WIDTH,
        image_size=STORE,
        num_classes=num_classes,
        vocab_size=num_classes,
        labels=str(out / "no_labels"),
    )
    record_id = 0
    for split, files in (("train", [TRAIN_LARGE, TRAIN_SMALL]), ("val", [VAL])):
        for part, n in enumerate(files):
            with writer.shard(split, part) as rec:
                for _ in range(n):
                    noisy = split == "train" and part == 0
                    rec.write(
                        record_id, pack_image_record(pad_labels([record_id], LABEL_WIDTH), record_id, _jpeg(rng, noisy))
                    )
                    record_id += 1
    return writer.close()


@pytest.fixture(scope="module")
def id_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_id_shards(tmp_path_factory.mktemp("id_shards"))


def _iterated_part_sizes(paths: list[Path], parts: int) -> list[int]:
    """Records MXNet itself puts in each part (batch size 1: no padding rows to tell apart)."""
    sizes = []
    for part in range(parts):
        try:
            it = mx.io.ImageRecordIter(
                path_imgrec=";".join(map(str, paths)),
                data_shape=(3, 32, 32),
                batch_size=1,
                label_width=LABEL_WIDTH,
                num_parts=parts,
                part_index=part,
                preprocess_threads=1,
                round_batch=False,
            )
        except StopIteration:  # an empty part
            sizes.append(0)
            continue
        sizes.append(sum(1 for _ in it))
    return sizes


def test_part_record_counts_match_mxnet(id_shards: Path) -> None:
    shards = read_shard_set(id_shards)
    for paths in (list(shards.train), list(shards.val)):
        for parts in (1, 2, 3, 5):
            assert part_record_counts(paths, parts) == _iterated_part_sizes(paths, parts), (paths, parts)
    counts = part_record_counts(list(shards.train), 2)
    assert counts == [6, 18]  # large records first: one part is short of the 3 batches of 4 each worker runs
    with pytest.raises(TrainInputError, match=r"at least one batch \(8 records\), found parts of \[6, 18\]"):
        check_train_parts(
            shards.train, shards.train_records, Workers("dist_sync", kv=object(), rank=0, num_workers=2), 8
        )
    check_train_parts(shards.train, shards.train_records, Workers("dist_sync", kv=object(), rank=0, num_workers=2), 4)


def test_eval_iterator_marks_the_short_last_batch_as_padding(id_shards: Path, conf: PipelineConfig) -> None:
    """Without round_batch MXNet reports pad 0 for a short last batch of garbage rows; record_iter(train=False)
    marks them, every pass."""
    shards = read_shard_set(id_shards)
    tc = TrainConfig(batch_size=3, input_size=32, threads=1)
    for parts, index, expected in ((1, 0, list(range(TRAIN, TRAIN + VAL))), (2, 1, None)):
        it = record_iter(
            shards.val,
            shards,
            conf,
            tc,
            train=False,
            label_name="base_label",
            multi_label=True,
            num_parts=parts,
            part_index=index,
        )
        passes = []
        for _ in range(2):
            ids = []
            for batch in it:
                n = batch.data[0].shape[0] - batch.pad
                ids += [i[0] for i in label_ids(batch.label[0].asnumpy()[:n])]
            passes.append(ids)
            it.reset()
        assert passes[0] == passes[1]
        assert len(passes[0]) == part_record_counts(list(shards.val), parts)[index]
        if expected is not None:
            assert passes[0] == expected  # 8 records in batches of 3: the last batch has pad 1


def test_fixed_batches_cycles_a_short_part(id_shards: Path, conf: PipelineConfig) -> None:
    shards = read_shard_set(id_shards)
    tc = TrainConfig(batch_size=4, input_size=32, threads=1)
    it = record_iter(
        shards.train, shards, conf, tc, train=True, label_name="base_label", multi_label=True, num_parts=2, part_index=0
    )
    seen: list[list] = []
    assert len(list(fixed_batches(it, 7, seen))) == 7
    ids = [i[0] for batch in seen for i in batch]
    assert len(ids) == 28 and set(ids) == set(range(6))  # the 6-record part, read more than four times


@pytest.fixture(scope="module")
def dist_run(tmp_path_factory: pytest.TempPathFactory, id_shards: Path) -> tuple[Path, Path, dict]:
    """A real 2-worker, 1-server dist_sync run through the CLI (--launch local); (out, worker dump, printed JSON)."""
    from softlines_attr.cli import main

    tmp = tmp_path_factory.mktemp("dist_run")
    out, dump = tmp / "model", tmp / "dump"
    saved = {k: os.environ.get(k) for k in ROLE_ENV}
    os.environ.update(ROLE_ENV)  # the roles inherit the environment; 4 processes share 2 cores
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            code = main(
                [
                    "train",
                    "--shards",
                    str(id_shards),
                    "--out",
                    str(out),
                    *TRAIN_ARGS,
                    "--kv-store",
                    "dist_sync",
                    "--launch",
                    "local",
                    "--num-workers",
                    "2",
                    "--num-servers",
                    "1",
                    "--launch-timeout",
                    "150",
                    "--worker-dump",
                    str(dump),
                ]
            )
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert code == 0
    return out, dump, json.loads(stdout.getvalue().strip().splitlines()[-1])


def test_two_worker_dist_sync_training(dist_run: tuple[Path, Path, dict]) -> None:
    """Identical parameters on both workers, disjoint (and unequal) parts, equal batch counts, one writer."""
    out, dump, printed = dist_run
    assert printed["bundle"] == f"{out}/bundle" and printed["workers"] == 2

    records = [json.loads((dump / f"worker-{rank}.json").read_text()) for rank in (0, 1)]
    params = [mx.nd.load(str(dump / f"worker-{rank}.params")) for rank in (0, 1)]
    # both workers end with identical parameters (args through the kvstore, BN statistics averaged)
    assert set(params[0]) == set(params[1]) and any(k.startswith("aux:") for k in params[0])
    for name, value in params[0].items():
        np.testing.assert_array_equal(params[1][name].asnumpy(), value.asnumpy(), err_msg=name)
    # ... and rank 0's bundle holds them
    bundle = load_bundle(out / "bundle")
    for name, value in bundle.arg_params.items():
        np.testing.assert_array_equal(params[0][f"arg:{name}"].asnumpy(), value.asnumpy(), err_msg=name)
    # every worker ran the same number of batches in every epoch, though the parts differ in size
    for r in records:
        assert r["num_workers"] == 2 and r["batches_per_epoch"] == 3
        assert [len(epoch) for epoch in r["train_batches"]] == [3, 3]
    train_ids = [{i[0] for epoch in r["train_batches"] for batch in epoch for i in batch} for r in records]
    assert not train_ids[0] & train_ids[1], "the workers' train parts overlap"
    assert train_ids[0] | train_ids[1] <= set(range(TRAIN))
    assert len(train_ids[0]) != len(train_ids[1])  # unequal parts, and still no hang
    val_ids = [[i[0] for i in r["val_ids"]] for r in records]
    assert sorted(val_ids[0] + val_ids[1]) == list(range(TRAIN, TRAIN + VAL)), (
        "the val parts are not a partition of the val split"
    )
    # only rank 0 wrote: one checkpoint per epoch, one bundle; the run trained
    assert sorted(p.name for p in (out / "checkpoints").glob("*.params")) == ["model-0001.params", "model-0002.params"]
    first = mx.nd.load(str(out / "checkpoints" / "model-0001.params"))["arg:fc_base_weight"].asnumpy()
    assert not np.array_equal(first, bundle.arg_params["fc_base_weight"].asnumpy())
    assert bundle.manifest.metrics["val_workers"] == 2.0
    assert bundle.manifest.metrics["val_records"] == len(val_ids[records[0]["rank"]])


def test_a_failing_worker_ends_the_launch_with_its_error(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(
        DistributedLaunchError, match=r"worker 0 failed: expected exit code 0, found 2(.|\n)*no shard manifest"
    ):
        launch_local(
            1,
            1,
            ["train", "--shards", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), "--kv-store", "dist_sync"],
            timeout_s=60,
            log_dir=tmp_path / "logs",
            extra_env=ROLE_ENV,
        )
    assert time.monotonic() - started < 60


def test_a_hung_launch_times_out(tmp_path: Path) -> None:
    # a limit shorter than the roles' start-up (importing mxnet): the timeout stops them all, naming them
    with pytest.raises(DistributedLaunchError, match=r"timed out(.|\n)*still running"):
        launch_local(
            1,
            1,
            ["train", "--shards", "x", "--out", str(tmp_path), "--kv-store", "dist_sync"],
            timeout_s=0.5,
            log_dir=tmp_path / "logs",
            extra_env=ROLE_ENV,
        )


def test_dist_kv_store_outside_a_launch_is_refused(tmp_path: Path, id_shards: Path, conf: PipelineConfig) -> None:
    with pytest.raises(DistributedLaunchError, match="DMLC_ROLE=worker"):
        train(
            id_shards,
            tmp_path / "model",
            conf,
            TrainConfig(epochs=1, batch_size=4, width=0.125, input_size=32, threads=1, kv_store="dist_sync"),
        )


def test_launch_needs_a_dist_kv_store(tmp_path: Path, id_shards: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from softlines_attr.cli import main

    assert main(["train", "--shards", str(id_shards), "--out", str(tmp_path), "--launch", "local"]) == 2
    assert "expected --kv-store among" in capsys.readouterr().err


def test_workers_get_the_launchers_resolved_settings_as_json_not_its_flags(tmp_path: Path) -> None:
    from softlines_attr.cli import build_parser
    from softlines_attr.commands.common import config_from_args
    from softlines_attr.commands.train import train_settings, worker_command_line
    from softlines_attr.errors import ConfigError

    conf_file = tmp_path / "c.toml"
    conf_file.write_text("[train]\nwidth = 0.5\nepochs = 7\n")
    argv = [
        "train",
        "--shards",
        "s",
        "--out",
        "o",
        "--epochs",
        "3",
        "--lr-step-epochs",
        "1,2",
        "--gpus",
        "0,1",
        "--resume",
        "--kv-store",
        "dist_sync",
        "--launch",
        "local",
        "--num-workers",
        "4",
        "--conf",
        str(conf_file),
        "--log-level",
        "DEBUG",
        "--input-size",
        "48",
        "--worker-dump",
        "d",
        "--no-prior-init",
    ]
    parser = build_parser()
    args = parser.parse_args(argv)
    launcher = train_settings(args, config_from_args(args))
    assert (launcher.epochs, launcher.width, launcher.input_size, launcher.prior_init) == (
        3,
        0.5,
        48,
        False,
    )  # flag > conf > default
    worker = worker_command_line(args, launcher)
    assert (
        worker[0] == "train" and "--launch" not in worker and "--num-workers" not in worker and "--epochs" not in worker
    )
    again = parser.parse_args(worker)
    assert (again.shards, again.out, again.resume, again.log_level, again.launch) == ("s", "o", True, "DEBUG", "none")
    assert (
        train_settings(again, config_from_args(again)) == launcher
    )  # the worker trains exactly what the launcher resolved
    with pytest.raises(ConfigError, match="unknown key 'epochz'"):
        train_settings(
            parser.parse_args(["train", "--shards", "s", "--out", "o", "--settings-json", '{"epochz": 3}']),
            config_from_args(args),
        )
    assert replace_option(["train", "--out", "s3://b/m", "--x"], "--out", "/tmp/o") == [
        "train",
        "--out",
        "/tmp/o",
        "--x",
    ]
    assert replace_option(["train", "--out=s3://b/m"], "--out", "/tmp/o") == ["train", "--out=/tmp/o"]


def test_gpus_are_dealt_to_local_workers() -> None:
    from softlines_attr.model.distributed.launch import split_gpus

    assert split_gpus((), 2) is None
    assert split_gpus((0, 1, 2, 3), 2) == ["0,1", "2,3"]
    assert split_gpus((0, 1, 2, 3), 4) == ["0", "1", "2", "3"]
    with pytest.raises(DistributedLaunchError, match="divisible"):
        split_gpus((0, 1, 2), 2)


def test_label_ids() -> None:
    assert label_ids(np.array([2.0, 0.0])) == [2, 0]
    assert label_ids(np.array([[0, 1, 1], [1, 0, 0]], dtype=np.float32)) == [[1, 2], [0]]


def test_outputs_upload_and_checkpoints_download_through_s3(tmp_path: Path, s3_endpoint: str) -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket="models")
    local = tmp_path / "out"
    ckpt = local / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / "model-symbol.json").write_text("{}")
    (ckpt / "model-0001.params").write_bytes(b"p1")
    uploader = CheckpointUploader(local, "s3://models/run1", every_s=3600)
    assert uploader(force=True) == 0  # epoch 1 not complete yet: no states file
    (ckpt / "model-0001.states").write_bytes(b"s1")
    assert uploader() == 0 and uploader(force=True) == 1  # unforced calls wait every_s
    (ckpt / "model-0002.params").write_bytes(b"p2")
    (ckpt / "model-0002.states").write_bytes(b"s2")
    assert uploader(force=True) == 1 and uploader(force=True) == 0
    (local / "bundle").mkdir()
    (local / "bundle" / "model.params").write_bytes(b"b")
    (local / "bundle" / "manifest.json").write_text("{}")
    assert _upload_bundle(local, "s3://models/run1") == 2
    keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="models")["Contents"])
    assert keys == [
        "run1/bundle/manifest.json",
        "run1/bundle/model.params",
        "run1/checkpoints/model-0001.params",
        "run1/checkpoints/model-0001.states",
        "run1/checkpoints/model-0002.params",
        "run1/checkpoints/model-0002.states",
        "run1/checkpoints/model-symbol.json",
    ]
    fresh = tmp_path / "fresh"
    assert _download_checkpoints("s3://models/run1", fresh) == 5
    assert (fresh / "checkpoints" / "model-0002.states").read_bytes() == b"s2"


@pytest.mark.slow  # two more dist runs
def test_dist_resume_equals_the_uninterrupted_run(
    tmp_path: Path, id_shards: Path, dist_run: tuple[Path, Path, dict]
) -> None:
    """1 epoch, then --resume to 2 epochs (both dist_sync, 2 workers) = the uninterrupted 2-epoch run, bit for bit."""
    out = tmp_path / "model"
    args = ["train", "--shards", str(id_shards), "--out", str(out), *TRAIN_ARGS, "--kv-store", "dist_sync"]
    launch_local(
        2, 1, replace_option(args, "--epochs", "1"), timeout_s=150, log_dir=tmp_path / "logs1", extra_env=ROLE_ENV
    )
    assert sorted(p.name for p in (out / "checkpoints").glob("*.states")) == ["model-0001.states"]
    launch_local(2, 1, [*args, "--resume"], timeout_s=150, log_dir=tmp_path / "logs2", extra_env=ROLE_ENV)
    whole, resumed = load_bundle(dist_run[0] / "bundle"), load_bundle(out / "bundle")
    for name, value in whole.arg_params.items():
        np.testing.assert_array_equal(resumed.arg_params[name].asnumpy(), value.asnumpy(), err_msg=name)
    for name, value in whole.aux_params.items():
        np.testing.assert_array_equal(resumed.aux_params[name].asnumpy(), value.asnumpy(), err_msg=name)


@pytest.mark.slow  # about 20-40 s: a barrier stage of two tasks, each starting ps-lite roles
def test_spark_launch_resumes_from_and_writes_to_s3(
    spark,
    tmp_path: Path,
    id_shards: Path,
    conf: PipelineConfig,
    s3_spark_workers: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The EMR path on local Spark, through the command (as jobs/train_dist.py runs it) with an s3:// --out on
    moto's server; in-process, on the tests' shared session (2 task slots).

    One barrier stage of 2 tasks (a server beside each worker, task 0 the scheduler); --resume finds
    epoch 1's checkpoint on S3 (from a single-process run), every task downloads it, the workers
    train epoch 2 only, rank 0's task uploads checkpoint 2 and the bundle.
    """
    import boto3

    from softlines_attr.cli import main

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="dist-models")  # its own bucket: the s3 server is shared by the session
    seed_run = tmp_path / "seed_run"
    train(
        id_shards,
        seed_run,
        conf,
        TrainConfig(epochs=1, batch_size=4, learning_rate=0.02, width=0.125, input_size=32, threads=1, seed=3),
    )
    for path in sorted((seed_run / "checkpoints").iterdir()):
        s3.upload_file(str(path), "dist-models", f"run1/checkpoints/{path.name}")
    dump = tmp_path / "dump"
    cmd = [
        "train",
        "--shards",
        str(id_shards),
        "--out",
        "s3://dist-models/run1",
        *TRAIN_ARGS,
        "--resume",
        "--worker-dump",
        str(dump),
        "--kv-store",
        "dist_sync",
        "--launch",
        "spark",
        "--master",
        "local[2]",
        "--num-workers",
        "2",
        "--launch-timeout",
        "200",
    ]
    for key, value in ROLE_ENV.items():  # the barrier tasks' roles inherit their Python worker's environment
        monkeypatch.setitem(spark.sparkContext.environment, key, value)
    code = main(cmd)
    done = capsys.readouterr()
    assert code == 0, done.err[-3000:]
    printed = json.loads(done.out.strip().splitlines()[-1])
    assert printed["bundle"] == "s3://dist-models/run1/bundle" and printed["workers"] == 2
    tasks = sorted(printed["tasks"], key=lambda r: r["partition"])
    assert "scheduler" in tasks[0]["exit_codes"] and all(set(r["exit_codes"].values()) == {0} for r in tasks)
    assert sum(1 for r in tasks if json.loads(r["stdout"])["bundle"]) == 1  # rank 0, whichever task it ran in
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="dist-models")["Contents"])
    assert keys == [
        "run1/bundle/manifest.json",
        "run1/bundle/model.params",
        "run1/bundle/symbol.json",
        "run1/checkpoints/model-0001.params",
        "run1/checkpoints/model-0001.states",
        "run1/checkpoints/model-0002.params",
        "run1/checkpoints/model-0002.states",
        "run1/checkpoints/model-symbol.json",
    ]
    records = [json.loads((dump / f"worker-{rank}.json").read_text()) for rank in (0, 1)]
    assert [len(r["train_batches"]) for r in records] == [1, 1]  # resumed: epoch 2 only
    params = [mx.nd.load(str(dump / f"worker-{rank}.params")) for rank in (0, 1)]
    for name, value in params[0].items():
        np.testing.assert_array_equal(params[1][name].asnumpy(), value.asnumpy(), err_msg=name)
