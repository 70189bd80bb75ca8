"""The scoring tables' contract: a versioned schema file whose fingerprint is pinned per version."""

from __future__ import annotations

import json

import pytest

from softlines_attr.score.errors import ScoreSchemaError
from softlines_attr.score.schema import (
    SCHEMA_FILE,
    VERSIONS_FILE,
    columns,
    ddl,
    fingerprint,
    load_contract,
    partition_by,
    schema_version,
)


def test_the_schema_cannot_change_without_a_new_version() -> None:
    """Changing score_tables.json needs a new ``version`` and its fingerprint recorded in schema_versions.json."""
    history = json.loads(VERSIONS_FILE.read_text())["versions"]
    version = str(schema_version())
    assert version in history, (
        f"schema version {version} has no recorded fingerprint; add {fingerprint()} to {VERSIONS_FILE.name}"
    )
    assert history[version] == fingerprint(), (
        f"{SCHEMA_FILE.name} changed but its version ({version}) did not: bump 'version', record the new fingerprint "
        f"{fingerprint()} in {VERSIONS_FILE.name}, and update docs/DATA_CONTRACTS.md"
    )
    assert max(int(v) for v in history) == int(version)  # the file is the newest released version
    assert len(set(history.values())) == len(history)  # every version is a different schema


def test_the_fingerprint_sees_any_change() -> None:
    contract = json.loads(SCHEMA_FILE.read_text())
    base = fingerprint(contract)
    changed = json.loads(json.dumps(contract))
    changed["tables"]["attributes"]["columns"][2]["type"] = "double"
    assert fingerprint(changed) != base
    renamed = json.loads(json.dumps(contract))
    renamed["tables"]["errors"]["columns"][0]["name"] = "product_id"
    assert fingerprint(renamed) != base
    assert fingerprint(json.loads(SCHEMA_FILE.read_text())) == base  # key order and whitespace do not count


def test_table_columns() -> None:
    assert load_contract()["version"] == schema_version() == 2  # 2: model_version is the model digest (issue 11)
    assert [n for n, _ in columns("attributes")] == [
        "asin",
        "value",
        "confidence",
        "top_k",
        "model_version",
        "image_uri",
        "run_id",
        "scored_at",
        "attribute",
    ]
    assert (
        partition_by("attributes") == ["attribute"] and columns("attributes")[-1][0] == "attribute"
    )  # Spark reads partition columns last
    assert [n for n, _ in columns("wide", ["hemline", "pattern"])] == [
        "asin",
        "hemline",
        "pattern",
        "keywords",
        "run_id",
    ]
    assert dict(columns("attributes"))["top_k"] == "array<struct<value:string,probability:float>>"
    assert ddl("errors").startswith("`asin` string, `image_uri` string, `stage` string")
    with pytest.raises(ScoreSchemaError, match="expected a table of"):
        columns("nope")
