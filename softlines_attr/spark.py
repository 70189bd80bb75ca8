"""Building the SparkSession from a profile in conf/spark/."""

from __future__ import annotations

import logging
import os
import sys

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
