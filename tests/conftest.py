"""Shared test fixtures: one real local SparkSession, a real S3-compatible server on loopback, config, and one
tiny trained hemline model.

Stage-specific fixtures live in the stage's own test files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from softlines_attr.config import PipelineConfig, load_config

REPO = Path(__file__).resolve().parent.parent

# The JVMs the tests start (the shared session's, and the Spark children of the tests that need their own
# process) compile with the JIT's first tier only: on tiny inputs a JVM's time goes to warming up, and C1
# alone warms up faster (measured: session start and the first label job about 1.5-2x faster on 2 cores).
# It changes how fast the JVM runs Spark's code, never what that code does.
TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1"
# ... and evaluate SQL plans and expressions without generating Java code: on rows counted in tens, compiling
# each new query's generated code (Janino) costs more than running it interpreted (measured, A/B twice at load
# 4-6: test_labels + test_shard_job + test_score_job 156 s -> 149 s on average). Spark computes the same results
# either way; it runs its own tests in both modes.
TEST_SQL_CONF = {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}


def child_spark_env() -> dict[str, str]:
    """The environment of a test's child process that starts its own Spark: this interpreter for the Python
    workers, and the shared session's JIT options and SQL settings for its JVM."""
    submit_args = " ".join(f"--conf {key}={value}" for key, value in TEST_SQL_CONF.items())
    return {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "JAVA_TOOL_OPTIONS": TEST_JVM_OPTIONS,
        "PYSPARK_SUBMIT_ARGS": f"{submit_args} pyspark-shell",
    }


@pytest.fixture(scope="session")
def conf() -> PipelineConfig:
    """The default pipeline configuration from conf/."""
    return load_config()


@pytest.fixture(scope="session")
def spark():
    """One real local SparkSession (2 cores) for the whole test session.

    Its master is ``local[2,2]``: a failed task is tried once more (plain ``local[2]`` fails the job on the
    first failure), so the tests of task retries (test_shard_cli, test_score_cli) run on this session too,
    as a cluster's retries would. A job whose every attempt fails still fails, after one retry per task.
    """
    from softlines_attr.config import SparkProfile
    from softlines_attr.spark import build_session

    profile = load_config().spark
    test_conf = dict(profile.conf)
    test_conf.update(
        {
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "4",
            "spark.driver.memory": "2g",
            "spark.driver.extraJavaOptions": TEST_JVM_OPTIONS,
            **TEST_SQL_CONF,
        }
    )
    session = build_session(SparkProfile("test", "local[2,2]", test_conf), app_name="softlines-attr-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto's server mode) on 127.0.0.1; yields its endpoint URL.

    boto3 clients in the tests (and in code under test, through ``AWS_ENDPOINT_URL_S3``) talk to it
    over HTTP exactly as they would to S3.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3")
    }
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_S3": endpoint,
        }
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_spark_workers(spark, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The S3 server's endpoint and test credentials in the environment of the Python workers of the jobs this test
    starts on the shared session; yields the endpoint.

    The session's JVM (and so its Python workers' environment) may predate :func:`s3_endpoint`; Spark gives
    every function's workers the context's ``environment`` (what ``spark.executorEnv.*`` sets on a cluster,
    where the nodes' instance role gives the credentials).
    """
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.setitem(spark.sparkContext.environment, key, os.environ[key])
    return s3_endpoint


@pytest.fixture(scope="session")
def generated_catalog(tmp_path_factory, conf: PipelineConfig) -> Path:
    """A small generated catalog (240 products, small images) with every bad-row kind; its folder."""
    import dataclasses

    from softlines_attr.synthetic import generate_catalog

    small = dataclasses.replace(
        conf, catalog=dataclasses.replace(conf.catalog, min_size=(150, 200), max_size=(300, 400))
    )
    out = tmp_path_factory.mktemp("generated_catalog")
    generate_catalog(out, small, n=240, seed=11)
    return out


@pytest.fixture(scope="session")
def hemline_model(tmp_path_factory, conf: PipelineConfig) -> tuple[Path, Path]:
    """A tiny hemline model trained once per session: (its refine shards' folder, its bundle folder).

    Refine shards of 96 train and 32 val records (three colours as hemline classes 0-2, stored at
    ``STORE`` px) and a width 0.125, 32 px softmax model trained on them for 10 epochs. Read-only:
    a test that changes the bundle (evaluate writes thresholds into it) works on a copy.
    """
    import dataclasses

    from test_model_train import STORE, write_base_shards

    from softlines_attr.model.train import train
    from softlines_attr.train_config import TrainConfig

    root = tmp_path_factory.mktemp("hemline_model")
    shards = write_base_shards(root / "shards_out", {"train": 96, "val": 32}, refine="hemline")
    tc = TrainConfig(epochs=10, batch_size=16, learning_rate=0.01, width=0.125, input_size=32, threads=1, seed=1)
    # the conf the shards were written with (store size STORE)
    images = dataclasses.replace(conf.images, store_size=STORE)
    train(shards, root / "model", dataclasses.replace(conf, images=images), tc)
    return shards, root / "model" / "bundle"
