r"""Config options on the command line: every field documented, its text in ``--help``."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from flowaccent.blurmask.evaluate import DeletionConfig
from flowaccent.blurmask.fit import BlurMaskConfig
from flowaccent.blurmask.run import RunConfig
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
    assert "(default: '')" in text
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
