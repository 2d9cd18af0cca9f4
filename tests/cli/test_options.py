r"""Config options on the command line: every field documented, its text in ``--help``."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from flowaccent.blurmask.config import RunConfig
from flowaccent.blurmask.evaluate import DeletionConfig
from flowaccent.blurmask.fit import BlurMaskConfig
from flowaccent.cli._options import add_config_options
from flowaccent.features.fbank import FbankConfig
from flowaccent.flows.realnvp import ModelConfig
from flowaccent.score.scorer import ScoreConfig
from flowaccent.synth.plan import SynthConfig
from flowaccent.train.config import ExperimentConfig

SECTIONS = [type(getattr(ExperimentConfig(), f.name)) for f in dataclasses.fields(ExperimentConfig)]
CONFIGS = [ScoreConfig, FbankConfig, SynthConfig, RunConfig, BlurMaskConfig, DeletionConfig, *SECTIONS]


@pytest.mark.parametrize("config", CONFIGS, ids=[c.__name__ for c in CONFIGS])
def test_every_option_is_documented(config):
    docs = config.field_docs()
    names = [f.name for f in dataclasses.fields(config)]
    assert [n for n in names if not docs.get(n)] == [], "document the field under Attributes:"
    assert set(docs) <= set(names), "Attributes: names a field the config does not have"


def test_help_shows_each_fields_first_sentence_and_default():
    parser = argparse.ArgumentParser(prog="x")
    add_config_options(parser, ScoreConfig)
    add_config_options(parser, ModelConfig, prefix="model")
    text = " ".join(parser.format_help().split())
    assert "score options: How corpora are scored." in text
    assert "--batch-frames INT frames per forward pass. (default: 8000)" in text
    assert "keeps a (8000, hidden)" not in text  # only the first sentence
    assert "--native-class STR the class whose likelihood ratio llr is reported" in text  # markup gone
    assert "(default: native if the model has it, else its first class)." in text
    assert "(default: '')" not in text  # a default the docs word themselves is not followed by the field's own
    assert "model options: The RealNVP architecture." in text
    assert "--model.num-blocks INT coupling blocks (the lab: 10). (default: 10)" in text


def test_docs_read_the_attributes_section_only():
    @dataclasses.dataclass(frozen=True)
    class C(ScoreConfig):
        r"""Title.

        Text naming x: not a field.

        Attributes:
            batch_frames: first line
                continued. Second sentence.
            seed: `s` with :class:`~flowaccent.nn.GradientFilter`.

        Example:
            y: not a field either
        """

    assert C.field_docs() == {
        "batch_frames": "first line continued. Second sentence.",
        "seed": "`s` with :class:`~flowaccent.nn.GradientFilter`.",
    }


def test_the_yaml_spelling_of_an_option_is_accepted_and_not_listed():
    parser = argparse.ArgumentParser(prog="x")
    add_config_options(parser, ModelConfig, prefix="model")
    add_config_options(parser, ScoreConfig)
    args = parser.parse_args(["--model.num_blocks", "3", "--batch_frames", "10", "--model.hidden", "7"])
    assert (args.cfg_model_num_blocks, args.cfg__batch_frames, args.cfg_model_hidden) == (3, 10, 7)
    assert parser.parse_args(["--model.num-blocks", "4"]).cfg_model_num_blocks == 4
    text = parser.format_help()
    assert "--model.num-blocks" in text and "num_blocks" not in text and "batch_frames" not in text


def test_a_prefix_of_an_option_is_not_taken_for_it(capsys):
    r"""argparse's abbreviations made ``--train.epoch 3`` (a typo) set ``train.epochs``."""
    from flowaccent.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main(["train", "--exp", "/nonexistent/exp", "--train.epoch", "3", "/nonexistent/data"])
    # the command's error, pointing at its --help (the top parser's was 'flowaccent: error: ... flowaccent --help')
    assert stopped.value.code == 2 and capsys.readouterr().err == ("flowaccent train: error: unrecognized arguments: "
                                                                   "--train.epoch (usage: flowaccent train --help)\n")


def test_a_usage_error_is_one_line(capsys):
    r"""argparse printed the command's whole usage first (32 lines for train), burying the error in a recipe's log."""
    from flowaccent.cli.main import main

    with pytest.raises(SystemExit) as stopped:
        main(["train", "--exp", "/nonexistent/exp", "--model.hidden", "abc"])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == ("flowaccent train: error: argument --model.hidden: invalid int value: 'abc' "
                                       "(usage: flowaccent train --help)\n")


@pytest.mark.parametrize("text, value", [("-4e2", -400.0), ("-1E-3", -0.001), ("-.5", -0.5), ("-400", -400.0),
                                         ("-inf", None)])
def test_a_negative_number_in_any_float_spelling_is_a_value(text, value, capsys):
    r"""``--high-freq -4e2`` said 'argument --high-freq: expected one argument': argparse reads only ``-400`` and
    ``-.5`` as negative numbers, and took the rest for options."""
    from flowaccent.cli.main import build_parser

    if value is not None:
        assert build_parser("fbank").parse_args(["fbank", "d", "--high-freq", text]).cfg__high_freq == value
    else:  # a value, refused by the config's own check, in its words
        from flowaccent.cli.main import main

        assert main(["fbank", "/nonexistent", "--high-freq", text]) == 1
        assert "high_freq (--high-freq) must be a finite number, got -inf" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # still an option where it is not a number: '-5e' (a typo)
        build_parser("fbank").parse_args(["fbank", "d", "--high-freq", "-5e"])


@pytest.mark.parametrize("text, value", [("16000", 16000), ("16000.0", 16000), ("1e4", 10000), ("-2", -2),
                                         ("16000.5", None), ("inf", None), ("nan", None), ("1e999", None),
                                         ("x", None)])
def test_an_integer_option_takes_a_whole_float(text, value):
    r"""Kaldi's --sample-frequency is a float: ``--sample-frequency 16000.0`` was refused on the command line, though a
    conf file read it (and 'flowaccent fbank --help' gives no hint why)."""
    import argparse

    from flowaccent.cli._options import add_config_options
    from flowaccent.features.fbank import FbankConfig

    parser = argparse.ArgumentParser(exit_on_error=False)
    add_config_options(parser, FbankConfig)
    if value is None:
        with pytest.raises(argparse.ArgumentError, match=f"invalid int value: '{text}'"):
            parser.parse_args(["--sample-frequency", text])
    else:
        assert parser.parse_args(["--sample-frequency", text]).cfg__sample_frequency == value


@pytest.mark.parametrize("text, value", [("500", 500), ("1e3", 1000), ("0", 0), ("2.0", 2), ("-1", None), ("1.5", None),
                                         ("\u00b2", None), ("inf", None), ("", None)])
def test_a_whole_number_option_takes_a_whole_float_as_the_integer_options_do(text, value):
    r"""--tsne-frames and --min-frames refused '1e3', which --num-sentences and --steps take; --nj of fbank and synth
    refused it as 'invalid int value'."""
    import argparse

    from flowaccent.cli._options import integer, whole_number
    from flowaccent.cli.main import build_parser

    parse = whole_number("0: none")
    if value is None:
        said = rf"expected a whole number >= 0 \(0: none\), got '{text}'"
        with pytest.raises(argparse.ArgumentTypeError, match=said):
            parse(text)
    else:
        assert parse(text) == value
    for command in ("fbank", "synth"):
        nj = next(a for a in build_parser(command)._actions if getattr(a, "choices", None))
        assert integer in [a.type for a in nj.choices[command]._actions if "--nj" in a.option_strings]


def test_the_command_says_its_name_once_and_trains_section_is_kept(tmp_path, capsys):
    r"""A library message's own prefix went after the command's ('flowaccent score: error: score: ...'); train's
    'train: epochs ...' names the config section (--train.epochs, as model: names --model.*), and stays."""
    from flowaccent.cli.main import main

    conf = Path(__file__).parents[2] / "recipes" / "demo" / "conf" / "quick.yaml"
    for argv, line in ((["--train.epochs", "0"], "train: epochs must be >= 1, got 0"),
                       (["--model.num-blocks", "0"], "model: num_blocks must be >= 1, got 0"),
                       ([], "give one or more DATA_DIR (NAME=DATA_DIR)")):
        assert main(["train", "--config", str(conf), "--exp", str(tmp_path / "e"), *argv]) == 1
        assert capsys.readouterr().err == f"flowaccent train: error: {line}\n"
    assert main(["score", "--exp", str(tmp_path), "--out", str(tmp_path / "o"), "x", "--batch-frames", "0"]) == 1
    assert capsys.readouterr().err == "flowaccent score: error: batch_frames (--batch-frames) must be >= 1, got 0\n"


@pytest.mark.parametrize(
    ("config", "values", "expected"),
    [
        (ExperimentConfig, {"train": {"epochs": 0}}, "train: epochs must be >= 1, got 0"),
        (ExperimentConfig, {"train": {"lr": -0.1}}, "train: lr must be > 0, got -0.1"),
        (ExperimentConfig, {"train": {"lr": float("inf")}}, "train: lr must be a finite number, got inf"),
        (ExperimentConfig, {"model": {"hidden": 0}}, "model: hidden must be >= 1, got 0"),
        (ExperimentConfig, {"model": {"scale_clamp": 0.0}}, "model: scale_clamp must be > 0, got 0.0"),
        (ExperimentConfig, {"prior": {"residual_var": -1.0}}, "prior: residual_var must be > 0, got -1.0"),
        (ExperimentConfig, {"features": {"splice": -2}}, "features: splice must be >= 0, got -2"),
        (BlurMaskConfig, {"smooth": -1.0}, "blur mask: smooth must be >= 0, got -1.0"),
    ],
)
def test_a_value_out_of_range_is_named_with_the_value(config, values, expected):
    from flowaccent.errors import ConfigError

    with pytest.raises(ConfigError, match=expected):
        config.from_dict(values)


@pytest.mark.parametrize("argv, named", [
    (["fixdir", "d", "--exclude", ""], "--exclude"),  # said '.: cannot read the --exclude list: Is a directory'
    (["phones", "--scores", "s", ""], "a CTM"),
    (["phones", "--scores", "s", "a.ctm", "--phones", ""], "--phones"),
    (["report", "--exp", "e", "--scores", "s", "--blurmask", ""], "--blurmask"),  # 'run blurmask --out . first'
    (["score", "--exp", "e", "--out", "o", "d", "--reference", ""], "--reference"),  # the first set, silently
    (["score", "--exp", "e", "--out", "o", "d", "--native-class", ""], "--native-class"),
    (["phones", "--scores", "s", "a.ctm", "--reference", ""], "--reference"),
    (["blurmask", "--exp", "e", "--out", "o", "--data", "d", "--utt-list", ""], "--utt-list"),
])
def test_an_empty_path_or_name_is_said_as_an_unset_variable(argv, named, capsys):
    from flowaccent.cli.main import main

    assert main(argv) == 2
    assert capsys.readouterr().err == (f"flowaccent {argv[0]}: error: {named} is empty (an unset shell variable?) "
                                       f"(usage: flowaccent {argv[0]} --help)\n")
