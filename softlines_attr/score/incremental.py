"""Incremental scoring: score only what changed since a previous run, carry the rest over.

A previous run's row for (asin, attribute) is carried into the new run, with its own ``run_id`` and
``scored_at``, when both hold:

* the catalog's ``image_uri`` for the asin equals the row's ``image_uri`` (the change key: an image
  replaced under the same URI is not detected; catalogs that overwrite images in place should
  version their URIs, or run without ``--previous``), and
* the model that scores the attribute now is the same model: the digest part of ``model_version``
  (after ``@``: params, symbol, heads and classes, thresholds, preprocessing) is compared, so new
  abstain thresholds (``evaluate --write-thresholds``) rescore the rows, and renaming a bundle folder
  does not force a rescore.

Carrying is per bundle: a bundle is run on an asin unless every attribute it predicts is carried
(a multi-head bundle is all or nothing). Rows of attributes no model scores now, and of asins no
longer in the catalog (or no longer candidates), are not carried. Error rows are never carried: a
row that failed before is tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from softlines_attr.errors import InputFormatError
from softlines_attr.io.commit import POINTER_FILE, SUMMARY_FILE, read_current
from softlines_attr.io.errors import CurrentVersionError, OutputLocationError
from softlines_attr.io.storage import join_uri
from softlines_attr.io.tables import read_parquet
from softlines_attr.score.errors import ScoreInputError, ScoreSchemaError
from softlines_attr.score.models import BundlePayload
from softlines_attr.score.schema import check_written, schema_version

log = logging.getLogger(__name__)


def read_previous(spark: SparkSession, previous_dir: str) -> tuple[DataFrame, dict]:
    """The previous run's attributes table and summary, from the current version of ``previous_dir``.

    ``previous_dir`` is a scoring job's ``--out`` (its ``_current.json`` is followed, see
    :func:`softlines_attr.io.commit.resolve_current`) or one run folder of it.

    Raises:
        ScoreInputError: when the folder holds no complete scoring run (no ``_summary.json``), a run
            of another schema version, or an attributes table not matching the contract.
    """
    try:
        current = read_current(previous_dir)
    except (CurrentVersionError, OutputLocationError) as exc:
        raise ScoreInputError(f"--previous {previous_dir}: {exc}") from None
    summary = current.summary
    if not summary:
        raise ScoreInputError(
            f"--previous {previous_dir}: expected a complete scoring run with {POINTER_FILE} or {SUMMARY_FILE}, "
            "found neither"
        )
    if summary.get("job") != "score":
        raise ScoreInputError(
            f"--previous {previous_dir}: expected the output of a score run, found job {summary.get('job')!r}"
        )
    if summary.get("schema_version") != schema_version():
        raise ScoreInputError(
            f"--previous {previous_dir}: expected schema version {schema_version()}, "
            f"found {summary.get('schema_version')!r}; rescore without --previous"
        )
    log.info("previous run %s at %s", current.run_id, current.uri)
    attrs_uri = join_uri(current.uri, "attributes")
    check_parquet_files(attrs_uri, f"--previous {previous_dir}: table attributes")
    try:
        attrs = read_parquet(spark, attrs_uri, what=f"--previous {previous_dir}: table attributes at")
    except InputFormatError as exc:
        raise ScoreInputError(str(exc)) from None
    try:
        check_written(attrs, "attributes")
    except ScoreSchemaError as exc:
        raise ScoreInputError(f"--previous {previous_dir}: {exc}") from None
    return attrs, summary


def check_parquet_files(uri: str, what: str) -> int:
    """Read the footer of every Parquet file under ``uri`` (local or S3): a missing table or corrupt file is one error.

    Spark would read only one footer for the schema and fail on a corrupt file later, inside the
    scoring job's tasks; the footers are small, so all of them are checked on the driver first.

    Returns:
        The number of Parquet files.

    Raises:
        ScoreInputError: no such folder, no Parquet file in it, or a file whose footer cannot be read.
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from softlines_attr.io.filesystem import filesystem_for

    fs, path = filesystem_for(uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        raise ScoreInputError(f"{what}: expected a Parquet folder at {uri}, found none")
    files = [
        i
        for i in fs.get_file_info(pafs.FileSelector(path, recursive=True))
        if i.type == pafs.FileType.File and not i.base_name.startswith(("_", ".")) and "/_" not in i.path[len(path) :]
    ]
    if not files:
        raise ScoreInputError(f"{what}: expected Parquet files in {uri}, found none")
    for info in files:
        try:
            with fs.open_input_file(info.path) as fh:
                pq.read_metadata(fh)
        except (OSError, ValueError) as exc:
            raise ScoreInputError(
                f"{what}: expected readable Parquet files, found {info.path[len(path) + 1 :]} unreadable "
                f"({' '.join(str(exc).split())[:200]})"
            ) from None
    return len(files)


def _map_literal(pairs: dict[str, str]) -> Column:
    return F.create_map(*[F.lit(x) for kv in pairs.items() for x in kv])


def plan_rows(
    tagged: DataFrame, payloads: Sequence[BundlePayload], previous: DataFrame | None
) -> tuple[DataFrame, DataFrame | None]:
    """Which bundles each candidate needs, and the previous rows carried over.

    Args:
        tagged: Every catalog row (:func:`softlines_attr.score.inputs.tag_catalog`): ``asin``,
            ``image_uri``, ``status``; candidates have unique asins.
        payloads: The run's bundles, in order.
        previous: The previous run's attributes table, or None (score everything).

    Returns:
        ``tagged`` with ``need`` (array<boolean>, one per bundle; all false for rows that are not
        candidates) and ``carry_attrs`` (array<string>), and the carried attributes rows (None
        without a previous run).
    """
    bundle_attrs = [[h.attribute for h in p.heads] for p in payloads]
    is_candidate = F.col("status") == "candidate"
    if previous is None:
        need = F.array(*[is_candidate for _ in payloads])
        return tagged.withColumn("need", need).withColumn("carry_attrs", F.array().cast("array<string>")), None
    candidates = tagged.filter(is_candidate)
    want_sha = _map_literal({a: p.version_sha for p, attrs in zip(payloads, bundle_attrs) for a in attrs})
    all_attrs = [a for attrs in bundle_attrs for a in attrs]
    prev = previous.filter(F.col("attribute").isin(*all_attrs))
    ok = (
        candidates.select("asin", F.col("image_uri").alias("_uri"))
        .join(prev.select("asin", "attribute", "image_uri", "model_version"), "asin")
        .filter(
            (F.col("image_uri") == F.col("_uri"))
            & (F.substring_index(F.col("model_version"), "@", -1) == want_sha[F.col("attribute")])
        )
        .groupBy("asin")
        .agg(F.collect_set("attribute").alias("_ok"))
    )
    ok_attrs = F.coalesce(F.col("_ok"), F.array().cast("array<string>"))
    needs = [
        F.size(F.array_intersect(ok_attrs, F.array(*[F.lit(a) for a in attrs]))) < F.lit(len(attrs))
        for attrs in bundle_attrs
    ]
    carry = F.concat(
        *[
            F.when(n, F.array().cast("array<string>")).otherwise(F.array(*[F.lit(a) for a in attrs]))
            for n, attrs in zip(needs, bundle_attrs)
        ]
    )
    needs = [is_candidate & n for n in needs]
    carry = F.when(is_candidate, carry).otherwise(F.array().cast("array<string>"))
    planned = (
        tagged.join(ok, "asin", "left").withColumn("need", F.array(*needs)).withColumn("carry_attrs", carry).drop("_ok")
    )
    carried = (
        prev.join(planned.filter(F.size("carry_attrs") > 0).select("asin", "carry_attrs"), "asin")
        .filter(F.array_contains(F.col("carry_attrs"), F.col("attribute")))
        .drop("carry_attrs")
    )
    return planned, carried
