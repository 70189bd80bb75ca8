"""Configuration: defaults load, overrides merge, and every malformed file gets a precise error."""

from __future__ import annotations

from pathlib import Path

import pytest

from softlines_attr.config import load_config, load_spark_profile, load_taxonomy
from softlines_attr.errors import ConfigError, UnknownAttributeError


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_match_design(conf):
    assert conf.labels.vocab_sizes == (500, 2000, 0)
    assert conf.labels.val_fraction == 0.2
    assert conf.taxonomy.names == ("hemline", "neck_style", "pattern", "silhouette", "sleeve_type")
    assert [len(a.classes) for a in conf.taxonomy.attributes] == [5, 11, 10, 5, 5]
    assert conf.taxonomy.attribute("neck_style").classes[-1] == "turtle_neck"
    assert conf.spark.name == "local" and conf.spark.master == "local[*]"


def test_override_changes_only_named_keys(tmp_path):
    user = write(tmp_path / "mine.toml", "seed = 5\n[labels]\nmin_doc_freq = 7\n")
    conf = load_config(user)
    assert conf.seed == 5 and conf.labels.min_doc_freq == 7
    assert conf.labels.vocab_sizes == (500, 2000, 0)  # untouched default
    assert str(user) in conf.sources


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[labels]\nmin_doc_frq = 2\n", r"mine\.toml: unknown key 'labels\.min_doc_frq'.*labels\.min_doc_freq"),
        (
            '[labels]\nmin_doc_freq = "two"\n',
            r"mine\.toml: key 'labels\.min_doc_freq': expected an integer, found 'two'",
        ),
        ("[labels]\ncount_by_parent = 1\n", r"key 'labels\.count_by_parent': expected true or false, found 1"),
        ('[labels]\nvocab_sizes = [500, "x"]\n', r"key 'labels\.vocab_sizes\[1\]': expected an integer"),
        (
            '[images]\nresize_mode = "stretch"\n',
            r"key 'images\.resize_mode': expected one of 'shorter_side', 'pad_square'",
        ),
        ("[labels]\nval_fraction = 1.5\n", r"key 'labels\.val_fraction': expected 0 <= value < 1, found 1\.5"),
        ("[labels]\nvocab_sizes = [500, 500]\n", r"key 'labels\.vocab_sizes': expected distinct sizes"),
        ('colour = "red"\n', r"unknown key 'colour'"),
        ("[labels\nmin_doc_freq = 2\n", r"mine\.toml: not valid TOML"),
    ],
)
def test_malformed_conf_names_file_key_and_expectation(tmp_path, text, expected):
    user = write(tmp_path / "mine.toml", text)
    with pytest.raises(ConfigError, match=expected):
        load_config(user)


def test_missing_files_are_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml does not exist"):
        load_config(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"tax\.toml does not exist"):
        load_config(taxonomy_path=tmp_path / "tax.toml")
    with pytest.raises(
        ConfigError, match=r"spark profile 'galaxy' not found; expected one of \['emr_cpu', 'emr_gpu', 'local'\]"
    ):
        load_spark_profile("galaxy")


def test_custom_taxonomy(tmp_path):
    tax = write(
        tmp_path / "tax.toml",
        '[attributes.colour_block]\nclasses = ["solid", "two_tone", "multi"]\n'
        '[attributes.waist]\nclasses = ["empire", "natural", "drop"]\nregion = "upper"\n',
    )
    conf = load_config(taxonomy_path=tax)
    assert conf.taxonomy.names == ("colour_block", "waist")
    assert conf.taxonomy.attribute("waist").region == "upper"
    assert conf.taxonomy.attribute("colour_block").index("multi") == 2
    with pytest.raises(
        UnknownAttributeError, match=r"no attribute 'hemline'; expected one of \['colour_block', 'waist'\]"
    ):
        conf.taxonomy.attribute("hemline")
    with pytest.raises(UnknownAttributeError, match=r"has no class 'huge'"):
        conf.taxonomy.attribute("waist").index("huge")


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[attributes.hemline]\nclasses = ["mini"]\n', r"expected at least 2 classes"),
        ('[attributes.hemline]\nclasses = ["mini", "mini"]\n', r"expected unique classes"),
        ('[attributes.Hemline]\nclasses = ["a", "b"]\n', r"attribute name 'Hemline': expected lower_snake_case"),
        ('[attributes.hemline]\nclasses = ["a", "b"]\ncolor = 1\n', r"unknown key 'attributes\.hemline\.color'"),
        ('[attributes.hemline]\nregion = "full"\n', r"missing key 'attributes\.hemline\.classes'"),
        ('[attrs.hemline]\nclasses = ["a", "b"]\n', r"expected exactly one top-level table 'attributes'"),
    ],
)
def test_malformed_taxonomy(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected):
        load_taxonomy(write(tmp_path / "tax.toml", text))


def test_spark_profiles_parse():
    emr = load_spark_profile("emr_gpu")
    assert emr.conf["spark.task.resource.gpu.amount"] == "1"
    assert emr.conf["spark.python.worker.reuse"] == "true"
    cpu = load_spark_profile("emr_cpu")  # the EMR steps on the master: no GPU request, one core per task
    assert not any(".resource.gpu." in key for key in cpu.conf) and cpu.conf["spark.task.cpus"] == "1"


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "[shard]\nrecords_per_shard = 0\n",
            r"key 'shard\.records_per_shard': expected >= 1 \(records per shard\), found 0",
        ),
        ("[shard]\nmax_shard_bytes = 10\n", r"key 'shard\.max_shard_bytes': expected >= 1024"),
        ("[shard]\nmin_shards = -1\n", r"key 'shard\.min_shards': expected >= 0"),
        ("[shard]\nlabel_width = -2\n", r"key 'shard\.label_width': expected >= 0"),
        ("[shard]\nfetch_threads = 0\n", r"key 'shard\.fetch_threads': expected >= 1, found 0"),
        ("[shard]\ndecode_threads_extra = -1\n", r"key 'shard\.decode_threads_extra': expected >= 0"),
        ("[shard]\nfetch_timeout_s = 0\n", r"key 'shard\.fetch_timeout_s': expected > 0 seconds, found 0"),
        ("[shard]\nfetch_retries = 0\n", r"key 'shard\.fetch_retries': expected >= 1"),
        ("[shard]\nmax_image_bytes = 0\n", r"key 'shard\.max_image_bytes': expected >= 1"),
        ("[shard]\nmultipart_chunk_bytes = 1000\n", r"key 'shard\.multipart_chunk_bytes': expected >= 5242880"),
        ("[score]\nfetch_retries = 0\n", r"key 'score\.fetch_retries': expected >= 1"),
        ("[images]\nmean = [1, 2]\n", r"key 'images\.mean': expected a list of 3 numbers, found \[1, 2\]"),
        ("[labels]\nstop_words = [1]\n", r"key 'labels\.stop_words\[0\]': expected a string, found 1"),
    ],
)
def test_every_shard_key_is_range_checked(tmp_path, text, expected):
    """Issue 11: records_per_shard = 0 and the other out-of-range [shard] keys are refused with what was expected."""
    with pytest.raises(ConfigError, match=expected):
        load_config(write(tmp_path / "mine.toml", text))


def test_the_range_table_covers_every_shard_key():
    import dataclasses

    from softlines_attr.config import ShardConfig
    from softlines_attr.config_checks import _SHARD_RANGES

    assert set(_SHARD_RANGES) == {f.name for f in dataclasses.fields(ShardConfig)}


def test_training_settings_are_defined_once_in_the_conf(tmp_path):
    import dataclasses

    from softlines_attr.train_config import TrainConfig, from_json, to_json

    conf = load_config()
    assert conf.train == TrainConfig()  # the dataclass's defaults are [train]'s: one set of defaults
    # [refine] names only what differs and takes the rest from [train]
    assert (conf.refine.epochs, conf.refine.learning_rate, conf.refine.backbone_lr_mult, conf.refine.loss) == (
        15,
        0.01,
        0.1,
        "softmax",
    )
    assert (
        dataclasses.replace(
            conf.refine, epochs=10, learning_rate=0.05, warmup_epochs=1.0, backbone_lr_mult=1.0, loss="auto"
        )
        == conf.train
    )
    user = write(tmp_path / "mine.toml", "[train]\nwidth = 0.5\nepochs = 3\n[refine]\nhead_warmup_epochs = 2\n")
    mine = load_config(user)
    assert (
        mine.train.width,
        mine.train.epochs,
        mine.refine.width,
        mine.refine.epochs,
        mine.refine.head_warmup_epochs,
    ) == (0.5, 3, 0.5, 15, 2)
    assert from_json(to_json(mine.refine), source="test") == mine.refine  # what a distributed worker receives


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[train]\nepochz = 3\n", "unknown key 'train.epochz'"),
        ("[refine]\nlearning_rate = 'fast'\n", "key 'refine.learning_rate': expected a number"),
        ("[train]\nepochs = 0\n", "key 'train.epochs': expected >= 1, found 0"),
        ("[refine]\nlabel_smoothing = 1.0\n", "key 'refine.label_smoothing': expected 0 <= value < 1"),
        ("[train]\nlr_schedule = 'linear'\n", "key 'train.lr_schedule': expected one of 'step', 'cosine'"),
        ("[train]\nkv_store = 'dist_sync'\n", "unknown key 'train.kv_store'"),  # a run's own setting, not the conf's
    ],
)
def test_malformed_training_settings_name_file_key_and_expectation(tmp_path, text, expected):
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        load_config(write(tmp_path / "bad.toml", text))
