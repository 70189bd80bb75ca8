"""Building the SparkSession from a profile in conf/spark/, and the session a command runs in."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark import SparkContext
from pyspark.sql import SparkSession

from softlines_attr.config import SparkProfile

log = logging.getLogger(__name__)


def under_spark_submit() -> bool:
    """True when this driver was started by ``spark-submit`` (which then owns the master URL)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(profile: SparkProfile, app_name: str, master: str | None = None) -> SparkSession:
    """Create (or reuse) the SparkSession for a job.

    Args:
        profile: The Spark profile from conf (settings applied as given).
        app_name: The Spark application name.
        master: An explicit master URL (``--master``); otherwise the profile's master is used,
            except under spark-submit, where the submit command's master wins.

    Returns:
        The active SparkSession.
    """
    if not under_spark_submit():
        # local runs: Python workers use this interpreter (the venv), not whatever python3 is on PATH
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    elif not under_spark_submit():
        builder = builder.master(profile.master)
    for key, value in profile.conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log.info("spark session %s on %s (profile %s)", app_name, spark.sparkContext.master, profile.name)
    return spark


def session_running() -> bool:
    """True when this process already has a running SparkContext (the one ``getOrCreate`` would return)."""
    return SparkContext._active_spark_context is not None


@contextmanager
def job_session(profile: SparkProfile, app_name: str, master: str | None = None) -> Iterator[SparkSession]:
    """The SparkSession a command runs its job in; stopped at the end only if this call created it.

    A session already running in this process (its caller's: a test suite, a notebook, a driver
    running several stages) is used as it is and left running: its settings stay the caller's (the
    profile's are not laid over them, and ``master`` cannot change a running context). Otherwise a
    session is built from the profile (:func:`build_session`) and stopped when the block ends, on an
    error too.

    Args:
        profile: The Spark profile from conf, for a session created here.
        app_name: The Spark application name, for a session created here.
        master: An explicit master URL (``--master``), for a session created here.

    Yields:
        The session to run the job in.
    """
    if session_running():
        spark = SparkSession.builder.getOrCreate()  # no options: the running session's settings are left as they are
        running = spark.sparkContext.master
        if master and master != running:
            log.warning("--master %s ignored: %s runs in the process's SparkSession on %s", master, app_name, running)
        log.info("%s: using the running SparkSession on %s (not stopped at the end)", app_name, running)
        yield spark
        return
    spark = build_session(profile, app_name, master)
    try:
        yield spark
    finally:
        spark.stop()
