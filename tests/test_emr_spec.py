"""The EMR spec (conf/emr.toml): strict parsing and the checks a type cannot express."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from softlines_attr import cli
from softlines_attr.emr.errors import EmrSpecError
from softlines_attr.emr.placeholders import placeholders, require_no_placeholders
from softlines_attr.emr.spec import load_emr_spec, parse_s3_uri
from softlines_attr.emr.steptypes import STEP_TYPES, command_parser, step_reads_writes, validate_step_args
from softlines_attr.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SHIPPED = (REPO / "conf" / "emr.toml").read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "emr.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_spec_loads_with_the_whole_method_and_gpu_nodes() -> None:
    spec = load_emr_spec()
    assert spec.source.endswith("conf/emr.toml")
    assert [s.type for s in spec.steps_of("pipeline")] == [
        "labels",
        "shard",
        "shard",
        "train_dist",
        "refine",
        "evaluate",
        "promote",
        "score",
    ]
    assert [s.type for s in spec.steps_of("audit")] == ["audit"]
    assert spec.schedule.audit_name and spec.schedule.audit_expression.startswith("cron(")
    assert spec.instances.core.instance_types[0].startswith(("g4dn", "g5"))
    assert spec.transient and spec.idle_timeout_minutes > 0
    assert spec.instances.task is not None and spec.instances.task.market == "SPOT"


def test_shipped_spec_holds_placeholders_and_refuses_real_calls() -> None:
    spec = load_emr_spec()
    keys = placeholders(spec)
    assert {"account_id", "log_uri", "release_prefix", "network.subnet_ids[0]"} <= set(keys)
    with pytest.raises(ConfigError, match=r"still hold the example values"):
        require_no_placeholders(spec)


def test_spec_without_placeholders_passes(tmp_path: Path) -> None:
    text = (
        SHIPPED.replace("change-me-softlines-attr", "acme-attr")
        .replace("change-me-images", "acme-images")
        .replace("subnet-change-me", "subnet-0abc")
        .replace('"change-me"', '"ml"')
        .replace('"000000000000"', '"123456789012"')
    )
    spec = load_emr_spec(_write(tmp_path, text))
    assert placeholders(spec) == []
    require_no_placeholders(spec)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('region = "us-east-1"', 'region = "us-east-1"\nregoin = "x"', r"unknown key 'regoin'"),
        ("count = 2", 'count = "2"', r"key 'instances.core.count': expected an integer"),
        (
            'instance_types = ["g4dn.2xlarge"]       #',
            'instance_types = ["m5.2xlarge"]  #',
            r"instances.core.instance_types.*GPU instance types.*m5.2xlarge",
        ),
        (
            'instance_types = ["g4dn.2xlarge"]       #',
            'instance_types = ["g4dn.2xlarge", "g5.2xlarge"]  #',
            r"exactly one type for instance groups",
        ),
        ('account_id = "000000000000"', 'account_id = "12345"', r"key 'account_id': expected a 12-digit"),
        (
            'log_uri = "s3://change-me-softlines-attr/emr/logs/"',
            'log_uri = "/tmp/logs"',
            r"key 'log_uri': expected an s3://",
        ),
        ('release_label = "emr-7.11.0"', 'release_label = "emr-5.36.0"', r"emr-6.x or later"),
        ('expression = "cron(0 3 ? * SUN *)"', 'expression = "0 3 * * 0"', r"schedule.expression.*cron"),
        (
            'name = "shard-base"',
            'name = "build-labels"',
            r"steps\[1\].name.*unique",
        ),
        ('schedule = "audit"\n', "", r"audit_name, audit_expression and steps with schedule = 'audit'"),
        (
            'name = "score"\ntype = "score"',
            'name = "score"\nschedule = "audit"\ntype = "score"',
            r"steps\[7\].schedule.*'pipeline' for a GPU step",
        ),
        ('"--num-workers", "2"', '"--num-workers", "5"', r"--num-workers at most the GPU nodes \(2\)"),
        ('type = "labels"', 'type = "tokenize"', r"no step type 'tokenize'"),
        ('cpu_driver_memory = "20g"', 'cpu_driver_memory = "lots"', r"key 'cpu_driver_memory': expected a JVM memory"),
        ('kind = "groups"', 'kind = "pools"', r"key 'instances.kind': expected one of 'groups', 'fleets'"),
    ],
)
def test_bad_specs_name_the_file_key_and_expectation(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in SHIPPED, old
    path = _write(tmp_path, SHIPPED.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_emr_spec(path)
    assert str(path) in str(info.value)


def test_missing_spec_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist"):
        load_emr_spec(tmp_path / "nope.toml")


def test_fleets_allow_several_types_and_subnets(tmp_path: Path) -> None:
    text = (
        SHIPPED.replace('kind = "groups"', 'kind = "fleets"')
        .replace('instance_types = ["g4dn.2xlarge"]       #', 'instance_types = ["g4dn.2xlarge", "g5.2xlarge"]  #')
        .replace('subnet_ids = ["subnet-change-me"]', 'subnet_ids = ["subnet-a", "subnet-b"]')
    )
    spec = load_emr_spec(_write(tmp_path, text))
    assert spec.instances.core.instance_types == ("g4dn.2xlarge", "g5.2xlarge")
    assert spec.network.subnet_ids == ("subnet-a", "subnet-b")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('"--vocab-size", "2000",', '"--vocab-size", "lots",', r"'shard-base'.*--vocab-size: invalid int value"),
        (
            '"--vocab-size", "2000",',
            '"--vocab-size", "2000", "--tags", "s3://b/t/",',
            r"'shard-base'.*expected either --vocab-size N .* or --tags PATH with --attribute NAME",
        ),
        (
            '"--out", "s3://change-me-softlines-attr/attributes/"]',
            '"--outt", "s3://x/"]',
            r"'score'.*softlines-attr score.*required: --out",
        ),
        (
            '"--out", "s3://change-me-softlines-attr/labels/"]',
            '"--out", "s3://b/l/", "--conf", "x.toml"]',
            r"'build-labels'.*expected no --conf in args",
        ),
        (
            '"--out", "s3://change-me-softlines-attr/labels/"]',
            '"--out", "s3://b/l/", "--spark-profile", "local"]',
            r"expected no --spark-profile",
        ),
        ('"--out", "s3://change-me-softlines-attr/labels/"]', '"--out", "s3://b/l/", "--run-id", "x"]', r"no --run-id"),
        ('"--out", "s3://change-me-softlines-attr/labels/"]', '"--out", "s3://b/l/", "--con", "x"]', r"no --conf"),
        (
            '"--out", "s3://change-me-softlines-attr/attributes/"]',
            '"--out", "s3://x/", "--dry"]',
            r"'score'.*unrecognized arguments: --dry",
        ),
        (
            '"--catalog", "s3://change-me-softlines-attr/catalog/latest/",\n        "--out", '
            '"s3://change-me-softlines-attr/labels/"]',
            '"--catalog", "s3://b/c/"]',
            r"'build-labels'.*the following arguments are required: --out",
        ),
        ('"--resume", "--launch-timeout"', '"--launch", "local", "--launch-timeout"', r"'train-base'.*--launch"),
        ('"--write-thresholds"]', '"--split", "test"]', r"'evaluate'.*--split: invalid choice: 'test'"),
        (
            '"--models", "s3://change-me-softlines-attr/models/registry/"]',
            '"--registry", "s3://x/"]',
            r"'promote'.*required: --models",
        ),
    ],
)
def test_step_args_are_parsed_by_the_commands_own_parsers(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in SHIPPED, old
    path = _write(tmp_path, SHIPPED.replace(old, new, 1))
    with pytest.raises(EmrSpecError, match=message) as info:
        load_emr_spec(path)
    assert str(path) in str(info.value)


def test_parse_s3_uri() -> None:
    assert parse_s3_uri("s3://b/k/x") == ("b", "k/x")
    assert parse_s3_uri("s3n://b/logs/") == ("b", "logs/")
    with pytest.raises(ConfigError):
        parse_s3_uri("/local/path")


#: A valid command line of every step type (refine and multi shards too), as a spec's ``args``.
VALID_ARGS: dict[str, list[list[str]]] = {
    "labels": [["--catalog", "s3://b/catalog/", "--out", "s3://b/labels/"]],
    "shard": [
        ["--labels", "s3://b/labels/", "--vocab-size", "500", "--out", "s3://b/shards/base/"],
        ["--labels", "s3://b/labels/", "--tags", "s3://b/tags/", "--attribute", "neck_style", "--out", "s3://b/n/"],
        [
            "--labels",
            "s3://b/l/",
            "--tags",
            "s3://b/t/",
            "--attribute",
            "all",
            "--catalog",
            "s3://b/c/",
            "--out",
            "s3://b/m/",
        ],
    ],
    "train_dist": [
        ["--num-workers", "2", "--shards", "/mnt/s3/b/shards/base/", "--out", "s3://b/base/", "--epochs", "2"]
    ],
    "refine": [
        ["--base", "s3://b/base/bundle", "--shards", "s3://b/m/", "--attribute", "all", "--out", "s3://b/cand/"]
    ],
    "evaluate": [
        ["--model", "s3://b/cand/bundle", "--shards", "s3://b/m/", "--out", "s3://b/ev/", "--write-thresholds"]
    ],
    "quantize": [
        ["--model", "s3://b/ev/bundle", "--shards", "s3://b/m/", "--out", "s3://b/int8/", "--num-calib", "64"]
    ],
    "promote": [["--candidate", "s3://b/ev/", "--shards", "s3://b/m/", "--models", "s3://b/registry/"]],
    "score": [
        ["--catalog", "s3://b/catalog/", "--models", "s3://b/registry/", "s3://b/int8/", "--out", "s3://b/attr/"]
    ],
    "audit": [
        ["--scores", "s3://b/attr/", "--tags", "s3://b/audit-tags/", "--since", "2026-11-01", "--out", "s3://b/au/"]
    ],
}
#: One wrong argument per step type, and what argparse (or the command's own check) says.
WRONG_ARGS: dict[str, tuple[list[str], str]] = {
    "labels": (["--catalog", "s3://b/c/", "--out", "s3://b/l/", "--input-format", "xml"], r"invalid choice: 'xml'"),
    "shard": (["--labels", "s3://b/l/", "--out", "s3://b/s/"], r"expected either --vocab-size N"),
    "train_dist": (["--shards", "/mnt/s3/b/s/", "--out", "s3://b/o/", "--epochs", "two"], r"--epochs: invalid int"),
    "refine": (["--shards", "s3://b/m/", "--attribute", "all", "--out", "s3://b/c/"], r"required: --base"),
    "evaluate": (["--model", "m", "--shards", "s", "--gpu", "first"], r"--gpu: invalid int value"),
    "quantize": (["--model", "m", "--shards", "s", "--out", "o", "--calib-mode", "kl"], r"invalid choice: 'kl'"),
    "promote": (["--candidate", "c", "--shards", "s", "--models", "r", "--gate", "off"], r"unrecognized arguments"),
    "score": (["--catalog", "c", "--models", "--out", "o"], r"--models: expected at least one argument"),
    "audit": (["--scores", "s", "--out", "o"], r"required: --tags"),
}


@pytest.mark.parametrize("name", sorted(STEP_TYPES))
def test_every_step_type_builds_its_args_through_its_commands_parser(name: str) -> None:
    stype = STEP_TYPES[name]
    assert (REPO / stype.script).is_file()
    cli_parser = cli.build_parser()
    sub = next(a for a in cli_parser._actions if isinstance(a, argparse._SubParsersAction)).choices[stype.command]
    ours = command_parser(stype.command)
    # the same option definitions as the CLI's own subcommand (one definition, two users)
    assert {o for a in ours._actions for o in a.option_strings} == {
        o for a in sub._actions for o in a.option_strings if o not in ("-h", "--help")
    }
    for argv in VALID_ARGS[name]:
        ns = validate_step_args(stype, argv, step=f"a-{name}")
        by_cli = vars(sub.parse_args([*stype.fixed_args, *argv]))
        assert vars(ns) == {k: v for k, v in by_cli.items() if k != "_run"}
        reads, writes = step_reads_writes(stype, ns)
        assert writes and all(w.startswith("s3://") for w in writes)
        assert not set(reads) & set(writes) or name == "promote"
    wrong, message = WRONG_ARGS[name]
    with pytest.raises(EmrSpecError, match=rf"step 'a-{name}' \(type {name}\).*{message}"):
        validate_step_args(stype, wrong, step=f"a-{name}")


def test_reads_and_writes_come_from_the_parse() -> None:
    stype = STEP_TYPES["promote"]
    ns = validate_step_args(stype, VALID_ARGS["promote"][0], step="p")
    assert step_reads_writes(stype, ns) == (["s3://b/ev/", "s3://b/m/"], ["s3://b/registry/"])
    train = STEP_TYPES["train_dist"]
    ns = validate_step_args(train, ["--shards", "/mnt/s3/b/shards/", "--out", "s3://b/base/{run_id}/"], step="t")
    assert step_reads_writes(train, ns) == (["s3://b/shards/"], ["s3://b/base/"])
