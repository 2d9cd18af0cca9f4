r"""Every shipped config loads strictly and builds a model of the stated size."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowaccent.features import FeaturePipeline
from flowaccent.flows.realnvp import flops_per_frame
from flowaccent.model import FlowModel
from flowaccent.train.config import ExperimentConfig

CONFIGS = sorted(Path(__file__).parents[2].glob("recipes/*/conf/*.yaml"))
LAB = {
    "dnf_120.yaml": (120, 120),
    "dnf_440_c400.yaml": (440, 400),
    "dnf_440_c440.yaml": (440, 440),
    "nf_120.yaml": (120, 0),
}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_loads_and_builds(path):
    config = ExperimentConfig.from_yaml(path)
    pipeline = FeaturePipeline(config.features, 40)
    model = FlowModel(pipeline, config.model, config.prior, ("native", "zh"))
    if path.name in LAB:
        dim, cond_dim = LAB[path.name]
        assert (model.dim, config.prior.cond_dim) == (dim, cond_dim)
        assert config.model.num_blocks == 10 and config.train.batch_size == 10000 and config.train.lr == 1e-4
        assert flops_per_frame(config.model, dim) > 0


def test_lab_configs_are_shipped():
    assert set(LAB) <= {p.name for p in CONFIGS}


def test_yaml_exponents_without_a_dot_are_numbers(tmp_path):
    r"""YAML 1.1 (PyYAML) reads ``lr: 2e-3`` as text: it was refused as 'expected a number'."""
    import pytest

    from flowaccent.errors import ConfigError

    (tmp_path / "c.yaml").write_text("train:\n  lr: 2e-3\n  weight_decay: 1E-5\n  epochs: 1e1\n")
    config = ExperimentConfig.from_yaml(tmp_path / "c.yaml")
    assert (config.train.lr, config.train.weight_decay, config.train.epochs) == (0.002, 1e-5, 10)
    # quoted text stays text, with a dot or without ('2e-3' was taken); a dot and underscores alone are no number
    # (float('.e1') was a traceback)
    for written, said in (("'0.5'", "'0.5'"), ("'2e-3'", "'2e-3'"), ("._e1", "'._e1'")):
        (tmp_path / "d.yaml").write_text(f"train:\n  lr: {written}\n")
        with pytest.raises(ConfigError, match=f"expected a number, got {said}"):
            ExperimentConfig.from_yaml(tmp_path / "d.yaml")


def test_broken_yaml_names_its_line(tmp_path):
    import pytest

    from flowaccent.errors import ConfigError

    (tmp_path / "c.yaml").write_text("train:\n  lr: 0.1\n   epochs: 3\n")  # one space too many
    with pytest.raises(ConfigError, match=r"c.yaml: not valid YAML: line 3, column 10: mapping values are not "):
        ExperimentConfig.from_yaml(tmp_path / "c.yaml")


def test_an_empty_file_is_said_to_leave_the_defaults(tmp_path, capsys):
    r"""An empty file (or comments alone, or /dev/null) trained the default 10 x 512 model without a word."""
    for text in ("", "# nothing yet\n"):
        (tmp_path / "c.yaml").write_text(text)
        assert ExperimentConfig.from_yaml(tmp_path / "c.yaml") == ExperimentConfig()
        assert capsys.readouterr().err == (f"train: note: {tmp_path / 'c.yaml'} holds no settings (empty, or comments "
                                           "only): the defaults are used\n")


def test_a_file_not_in_utf8_is_said_in_a_line(tmp_path):
    r"""A Latin-1 comment or a UTF-16 file was a 27-line UnicodeDecodeError traceback."""
    import pytest

    from flowaccent.errors import ConfigError

    for text, at in (("train: {epochs: 1}\n# caf\u00e9\n".encode("latin-1"), 24), ("train: {}\n".encode("utf-16"), 0)):
        (tmp_path / "c.yaml").write_bytes(text)
        with pytest.raises(ConfigError, match=rf"c.yaml: not UTF-8 text \(.* at byte {at}\); save it as UTF-8$"):
            ExperimentConfig.from_yaml(tmp_path / "c.yaml")


def _refused(tmp_path, text: str, match: str) -> None:
    r"""``text`` as a config file is a ConfigError matching ``match``."""
    import pytest

    from flowaccent.errors import ConfigError

    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=match):
        ExperimentConfig.from_yaml(tmp_path / "c.yaml")


def test_a_key_given_twice_is_refused_not_dropped(tmp_path):
    r"""A second 'train:' section appended to a copied config replaced the first (its lr back to the default), and
    a key twice in one section kept the last, with --check saying the config was valid."""
    _refused(tmp_path, "train: {lr: 0.1, epochs: 3, lr: 0.2}\n",
             r"c.yaml: not valid YAML: line 1, column 29: 'lr' given twice \(first at line 1\); each key once")
    _refused(tmp_path, "train:\n  lr: 0.1\nmodel:\n  hidden: 8\ntrain:\n  epochs: 7\n",
             r"line 5, column 1: 'train' given twice \(first at line 1\)")
    # one key in two sections is no repeat (model has no lr: refused as an unknown key)
    _refused(tmp_path, "train:\n  lr: 0.1\nmodel:\n  lr: 0.1\n", "model")
    (tmp_path / "d.yaml").write_text("train:\n  lr: 0.1\nmodel:\n  hidden: 8\n")
    assert ExperimentConfig.from_yaml(tmp_path / "d.yaml").train.lr == 0.1
    _refused(tmp_path, "? [a, b]\n: 1\n", "c.yaml: not valid YAML")  # an unhashable key: PyYAML's own error


def test_batchnorm_with_batches_of_one_frame_is_refused_when_read():
    r"""--check said the run would start; its first step's loss was nan (BatchNorm's variance of one frame)."""
    import pytest

    from flowaccent.errors import ConfigError

    with pytest.raises(ConfigError, match="train: batch_size 1 with model.norm batchnorm"):
        ExperimentConfig.from_dict({"model": {"norm": "batchnorm"}, "train": {"batch_size": 1}})
    assert ExperimentConfig.from_dict({"model": {"norm": "actnorm"}, "train": {"batch_size": 1}}).train.batch_size == 1


def test_a_word_yaml_reads_as_a_boolean_is_said_to_be_one(tmp_path):
    r"""'cmvn: off' was refused as 'False is not one of ...', a False the user never wrote."""
    _refused(tmp_path, "features:\n  cmvn: off\n", r"features.cmvn: False is not one of 'none', 'utt', 'spk' \(YAML "
             r"reads off, no, on and yes as false and true\)$")
    _refused(tmp_path, "features:\n  cmvn: global\n", r"'global' is not one of 'none', 'utt', 'spk'$")


def test_yaml_merge_keys_are_read(tmp_path):
    r"""``<<: *defaults`` (valid YAML, read by ``yaml.safe_load``) was 'not valid YAML: could not determine a
    constructor for the tag ...merge'; a key given beside the merge overrides it, as YAML says."""
    (tmp_path / "c.yaml").write_text("train: &t\n  lr: 0.1\n  epochs: 2\n  <<: {lr: 0.5, seed: 3}\n")
    train = ExperimentConfig.from_yaml(tmp_path / "c.yaml").train
    assert (train.lr, train.epochs, train.seed) == (0.1, 2, 3)
    # the anchor in a key of its own, as Docker Compose's x- fields hold them (a walkthrough's 'defaults:' was an
    # unknown key, and no other place for it was said)
    (tmp_path / "c.yaml").write_text("x-defaults: &d {epochs: 2, lr: 0.001}\ntrain: {<<: *d, batch_size: 256}\n")
    train = ExperimentConfig.from_yaml(tmp_path / "c.yaml").train
    assert (train.epochs, train.lr, train.batch_size) == (2, 0.001, 256)
    _refused(tmp_path, "defaults: &d {epochs: 2}\ntrain: {<<: *d}\n", r"unknown key\(s\) defaults; known: features, "
             r"model, prior, train \(a key that holds YAML anchors for them is named x-\.\.\., as x-defaults: "
             r"&defaults\)$")


def test_yaml_11_base_60_and_octal_numbers_are_refused(tmp_path):
    r"""``epochs: 1:30`` was read as 90 epochs and ``seed: 010`` as seed 8, without a word."""
    _refused(tmp_path, "train:\n  epochs: 1:30\n", r"line 2, column 11: '1:30' is a YAML 1.1 base 60 number \(90\); "
                                                   r"write it in decimal, or quote it")
    _refused(tmp_path, "train:\n  seed: 010\n", r"'010' is a YAML 1.1 octal number \(8\)")
    _refused(tmp_path, "train:\n  lr: 1:30.5\n", r"base 60 number \(90.5\)")
    (tmp_path / "c.yaml").write_text("train:\n  seed: 10\n  lr: 0.01\n  epochs: 0x10\n")
    assert ExperimentConfig.from_yaml(tmp_path / "c.yaml").train.epochs == 16


def test_a_mask_seed_past_the_generators_range_is_refused():
    r"""``--model.mask-seed 99999999999999999999`` was a traceback ('Overflow when unpacking long long') that
    ``--check`` passed."""
    import pytest

    from flowaccent.errors import ConfigError
    from flowaccent.flows.realnvp import ModelConfig

    with pytest.raises(ConfigError, match=r"model: mask_seed must be in \[0, 2\*\*63\), got 18446744073709551616"):
        ModelConfig(mask="random", mask_seed=2**64)
