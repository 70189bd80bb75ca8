"""The session a command runs in: a running one is used and left running, one it started is stopped."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import child_spark_env

from softlines_attr.config import SparkProfile
from softlines_attr.spark import job_session, session_running

REPO = Path(__file__).resolve().parent.parent

OTHER = SparkProfile(
    "other", "local[1]", {"spark.sql.shuffle.partitions": "7", "spark.sql.session.timeZone": "Asia/Tokyo"}
)


def test_a_running_session_is_used_as_it_is_and_left_running(spark) -> None:
    before = {k: spark.conf.get(k) for k in OTHER.conf}
    with job_session(OTHER, app_name="softlines-attr-labels", master="local[1]") as used:
        assert used.sparkContext.applicationId == spark.sparkContext.applicationId
        assert {k: used.conf.get(k) for k in OTHER.conf} == before  # the profile is not laid over the caller's
    assert session_running() and spark.range(5).count() == 5  # not stopped
    assert {k: spark.conf.get(k) for k in OTHER.conf} == before
    try:
        with job_session(OTHER, app_name="softlines-attr-shard"):
            raise RuntimeError("the job failed")
    except RuntimeError:
        pass
    assert spark.range(3).count() == 3  # a failing job does not stop the caller's session either


SCRIPT = """
from softlines_attr.config import SparkProfile
from softlines_attr.spark import job_session, session_running

profile = SparkProfile("t", "local[1]", {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "3"})
assert not session_running()
with job_session(profile, app_name="t") as spark:
    assert spark.range(4).count() == 4 and spark.conf.get("spark.sql.shuffle.partitions") == "3"
print("after the job:", session_running())
try:
    with job_session(profile, app_name="t") as spark:
        raise RuntimeError("the job failed")
except RuntimeError:
    print("after a failed job:", session_running())
"""


def test_a_session_the_command_started_is_stopped_also_after_an_error(tmp_path: Path) -> None:
    """In a process with no session (as under spark-submit or the console command): built from the profile,
    stopped at the end."""
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=tmp_path,
        env=child_spark_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["after the job: False", "after a failed job: False"]
