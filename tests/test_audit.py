"""The production audit on local Spark: a hand-made committed scores table and hand-made later tags (every kind of
bad tag row), the numbers checked against the ones worked out by hand in the comments."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from softlines_attr.audit.errors import AuditInputError
from softlines_attr.audit.job import AuditJob, run_audit_job
from softlines_attr.config import PipelineConfig
from softlines_attr.io.commit import StagedOutput, resolve_current

# scored rows: (attribute, asin, value (None = abstained), best class)
SCORED = [
    ("hemline", "A1", "mini", "mini"),
    ("hemline", "A2", None, "mini"),
    ("hemline", "A3", "midi", "midi"),
    ("hemline", "A4", None, "maxi"),
    ("hemline", "A5", "maxi", "maxi"),
    ("hemline", "A6", "knee_length", "knee_length"),  # never tagged
    ("pattern", "A1", "solid", "solid"),
    ("pattern", "A2", None, "floral"),
]
# later tags: (asin, attribute, label, tagged_at)
TAGS = [
    ("A1", "hemline", "mini", "2026-10-01"),  # received, right
    ("A2", "hemline", "mini", "2026-10-01"),  # abstained, best class right
    ("A3", "hemline", "mini", "2026-08-01"),  # received, wrong (midi)
    ("A4", "hemline", "maxi", "2026-10-01"),  # abstained, best class right
    ("A5", "hemline", "midi", None),  # received, wrong (maxi)
    ("A1", "pattern", "solid", "2026-10-01"),  # received, right
    ("A2", "pattern", "stripe", "2026-10-01"),  # abstained, best class wrong (floral)
    ("A1", "pattern", "solid", "2026-10-01"),  # duplicate_tag
    ("A3", "pattern", "floral", "2026-10-01"),  # conflicting_tags
    ("A3", "pattern", "plaid", "2026-10-01"),  # conflicting_tags
    ("Z9", "hemline", "mini", "2026-10-01"),  # unknown_asin
    ("A6", "pattern", "solid", "2026-10-01"),  # attribute_not_scored (A6 has hemline only)
    ("A1", "colour", "red", "2026-10-01"),  # unknown_attribute
    ("A1", "hemline", "ankle", "2026-10-01"),  # unknown_class
    (None, "hemline", "mini", "2026-10-01"),  # missing_field
    ("A4", "hemline", " ", "2026-10-01"),  # missing_field
]


@pytest.fixture(scope="module")
def scores(spark, tmp_path_factory) -> str:
    """A committed score output (the contract's attributes table) holding ``SCORED``."""
    from softlines_attr.score import schema

    out = str(tmp_path_factory.mktemp("audit_scores") / "scores")
    staged = StagedOutput(out, "s1", job="score")
    staged.prepare()
    rows = [
        (asin, value, 0.9 if value else 0.4, [(best, 0.9 if value else 0.4), ("other", 0.05)], "m@0123", "u", "s1",
         dt.datetime(2026, 9, 1), attribute)
        for attribute, asin, value, best in SCORED
    ]  # fmt: skip
    df = spark.createDataFrame(rows, schema.ddl("attributes"))
    df.write.partitionBy("attribute").parquet(staged.table_path("attributes"))
    staged.commit({"job": "score", "run_id": "s1"})
    return out


def _tags(tmp_path: Path, spark) -> str:
    path = str(tmp_path / "tags.parquet")
    spark.createDataFrame(TAGS, "asin string, attribute string, label string, tagged_at string").coalesce(
        1
    ).write.parquet(path)
    return path


def test_audit_numbers_match_the_hand_computed_case(spark, conf: PipelineConfig, scores: str, tmp_path: Path) -> None:
    out = str(tmp_path / "audit")
    summary = run_audit_job(spark, conf, AuditJob(scores, _tags(tmp_path, spark), out), run_id="a1")
    assert summary["tag_rows_in"] == 16 == summary["tag_rows_matched"] + summary["tag_rows_rejected"]
    assert summary["tag_rows_matched"] == 7
    assert {k: v for k, v in summary["rejects_by_reason"].items() if v} == {
        "missing_field": 2,
        "unknown_attribute": 1,
        "unknown_class": 1,
        "conflicting_tags": 2,
        "duplicate_tag": 1,
        "unknown_asin": 1,
        "attribute_not_scored": 1,
    }
    run = Path(resolve_current(out))
    doc = json.loads((run / "audit.json").read_text())
    hem = doc["attributes"]["hemline"]
    # hemline: 5 tags, 3 received (A1 right; A3, A5 wrong), best class right for A1, A2, A4
    assert (hem["tags"], hem["received"], hem["correct_received"], hem["correct_best"]) == (5, 3, 1, 3)
    assert hem["accuracy_received"] == pytest.approx(1 / 3)
    assert hem["accuracy_if_all"] == pytest.approx(0.6) and hem["coverage"] == pytest.approx(0.6)
    assert hem["average_per_class_accuracy_if_all"] == pytest.approx((2 / 3 + 0 + 1) / 3)  # mini, midi, maxi
    per_class = {r["name"]: r for r in hem["per_class"]}
    mini, midi, maxi = per_class["mini"], per_class["midi"], per_class["maxi"]
    assert (mini["tags"], mini["received"], mini["abstained"], mini["correct_received"], mini["correct_best"]) == (
        3,
        2,
        1,
        1,
        2,
    )
    assert mini["accuracy_received"] == 0.5 and mini["accuracy_if_all"] == pytest.approx(2 / 3)
    assert mini["predicted_received"] == 1 and mini["precision_received"] == 1.0  # A1
    assert maxi["accuracy_received"] is None and maxi["accuracy_if_all"] == 1.0 and maxi["coverage"] == 0.0
    assert maxi["predicted_received"] == 1 and maxi["precision_received"] == 0.0  # A5, tagged midi
    assert midi["accuracy_received"] == 0.0 and midi["precision_received"] == 0.0  # A3, tagged mini
    assert per_class["knee_length"]["tags"] == 0 and per_class["knee_length"]["accuracy_if_all"] is None
    # rows tagged class, columns best class: mini -> mini x2 (A1, A2), midi x1 (A3); midi -> maxi (A5); maxi -> maxi
    assert hem["classes"] == ["mini", "knee_length", "midi", "maxi", "high_low"]
    assert hem["confusion_matrix"]["counts"] == [
        [2, 0, 1, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0],
    ]
    assert hem["model_versions"] == {"m@0123": 5}
    pat = doc["attributes"]["pattern"]
    assert (pat["tags"], pat["accuracy_received"], pat["accuracy_if_all"], pat["coverage"]) == (2, 1.0, 0.5, 0.5)
    assert set(doc["attributes"]) == {"hemline", "pattern"}  # attributes without tags are left out

    # the tables: every tag row is in one of them, the rejects with their reason and message
    matched = spark.read.parquet(str(run / "matched"))
    rejects = spark.read.parquet(str(run / "rejects")).collect()
    assert matched.count() == 7 and len(rejects) == 9
    by_asin = {(r["asin"], r["label"]): r for r in rejects}
    assert by_asin[("A1", "ankle")]["reason"] == "unknown_class" and "ankle" in by_asin[("A1", "ankle")]["message"]
    assert by_asin[("Z9", "mini")]["reason"] == "unknown_asin"
    html = (run / "report.html").read_text()
    assert "Production audit" in html and "data:image/png;base64," in html and "accuracy if all" in html
    assert "| hemline | 5 | 3 | 0.333 | 0.600 | 0.600 |" in (run / "report.md").read_text()


def test_since_keeps_the_later_tags_and_counts_the_rest(
    spark, conf: PipelineConfig, scores: str, tmp_path: Path
) -> None:
    out = str(tmp_path / "audit")
    summary = run_audit_job(spark, conf, AuditJob(scores, _tags(tmp_path, spark), out, since="2026-09-01"))
    assert summary["rejects_by_reason"]["before_since"] == 1  # A3 hemline, tagged 2026-08-01
    assert summary["rejects_by_reason"]["no_tag_date"] == 1  # A5 hemline, no date
    assert summary["tag_rows_in"] == 16 and summary["tag_rows_matched"] == 5
    hem = summary["attributes"]["hemline"]  # A1 (right), A2 and A4 (abstained, best right)
    assert (hem["tags"], hem["accuracy_received"], hem["accuracy_if_all"]) == (3, 1.0, 1.0)
    assert hem["coverage"] == pytest.approx(1 / 3)


def test_bad_arguments_are_refused_before_any_work(spark, conf: PipelineConfig, scores: str, tmp_path: Path) -> None:
    from softlines_attr.errors import InputSchemaError

    tags = _tags(tmp_path, spark)
    with pytest.raises(AuditInputError, match=r"--since: expected a date YYYY-MM-DD, found '1 Sept'"):
        run_audit_job(spark, conf, AuditJob(scores, tags, str(tmp_path / "a"), since="1 Sept"))
    no_date = str(tmp_path / "no_date.jsonl")
    Path(no_date).write_text('{"asin": "A1", "attribute": "hemline", "label": "mini"}\n')
    with pytest.raises(AuditInputError, match="--since needs the tag date column 'tagged_at'"):
        run_audit_job(spark, conf, AuditJob(scores, no_date, str(tmp_path / "b"), since="2026-09-01"))
    no_label = str(tmp_path / "no_label.jsonl")
    Path(no_label).write_text('{"asin": "A1", "attribute": "hemline"}\n')
    with pytest.raises(InputSchemaError, match="label"):
        run_audit_job(spark, conf, AuditJob(scores, no_label, str(tmp_path / "c")))
    other = StagedOutput(str(tmp_path / "audit_out"), "x1", job="audit")
    other.prepare()
    other.commit({"job": "audit", "run_id": "x1"})
    with pytest.raises(AuditInputError, match="expected the score job's output, found the audit job's"):
        run_audit_job(spark, conf, AuditJob(str(tmp_path / "audit_out"), tags, str(tmp_path / "d")))
    with pytest.raises(AuditInputError, match="its attributes table at .*/nothing/attributes\\), found none"):
        run_audit_job(spark, conf, AuditJob(str(tmp_path / "nothing"), tags, str(tmp_path / "e")))
    assert not any((tmp_path / name).exists() for name in "abcde")  # nothing was written


def test_the_audit_command_prints_its_summary_and_refuses_a_bad_date_with_exit_2(
    spark, scores: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command in-process, on the session's Spark (a command leaves a session it did not start running)."""
    from softlines_attr.cli import main

    base = ["audit", "--scores", scores, "--tags", _tags(tmp_path, spark)]
    assert main([*base, "--out", str(tmp_path / "x"), "--since", "2026-13-01"]) == 2
    bad = capsys.readouterr().err
    assert "audit: error: --since: expected a date YYYY-MM-DD, found '2026-13-01'" in bad
    out = tmp_path / "cli"
    code = main([*base, "--out", str(out), "--run-id", "c1", "--master", "local[1]"])
    done = capsys.readouterr()
    assert code == 0, done.err[-3000:]
    printed = json.loads(done.out)
    assert (printed["run_id"], printed["tag_rows_in"], printed["tag_rows_matched"]) == ("c1", 16, 7)
    assert printed["attributes"]["hemline"]["accuracy_if_all"] == pytest.approx(0.6)
    assert resolve_current(str(out)) == str(out / "runs" / "c1")
