r"""Every config checks its fields' types and choices when built in Python, as ``from_dict`` does for YAML."""

from __future__ import annotations

import dataclasses
import importlib
import re
import typing
from typing import Literal

import numpy as np
import pytest

from flowaccent.config import Config, _hints
from flowaccent.errors import ConfigError

#: Where the configs live (torch-free modules: tests/test_startup.py).
MODULES = ("flowaccent.blurmask.config", "flowaccent.flows.config", "flowaccent.features.fbank",
           "flowaccent.features.config", "flowaccent.prior_config", "flowaccent.train.config", "flowaccent.synth.plan",
           "flowaccent.score.config")


def _configs() -> list[type[Config]]:
    for name in MODULES:
        importlib.import_module(name)
    found, todo = [], list(Config.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return sorted({c for c in found if c.__module__.startswith("flowaccent.")}, key=lambda c: c.__name__)


def _wrong(hint) -> object:
    r"""A value of the wrong type, or outside the choices, for a field annotated ``hint``."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "not-a-choice"
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        return object()
    return {int: 2.5, float: "fast", bool: "no", str: 3, tuple: 5}.get(origin or hint, object())


CASES = [(cls, name) for cls in _configs() for name in _hints(cls)]


def test_every_config_of_the_toolkit_is_covered():
    assert {c.__name__ for c in _configs()} >= {"ModelConfig", "PriorConfig", "FeaturePipelineConfig", "FbankConfig",
                                                 "TrainConfig", "ExperimentConfig", "ScoreConfig", "SynthConfig",
                                                 "BlurMaskConfig", "DeletionConfig", "RunConfig"}


@pytest.mark.parametrize("cls, name", CASES, ids=[f"{c.__name__}.{n}" for c, n in CASES])
def test_a_wrong_value_built_in_python_is_refused_naming_its_field(cls, name):
    r"""Only ``from_dict`` checked: ``ModelConfig(mask="rand")`` built random masks, ``FeaturePipelineConfig(
    cmvn="speaker")`` applied no CMVN at all, ``PriorConfig(learn_means="no")`` failed inside ``nn.Parameter``."""
    with pytest.raises(ConfigError, match=rf"^{cls.__name__}\.{name}(\[0\])?: "):
        cls(**{name: _wrong(_hints(cls)[name])})


def test_the_audits_cases_say_what_is_wrong():
    from flowaccent.features.pipeline import FeaturePipelineConfig
    from flowaccent.flows.realnvp import ModelConfig

    with pytest.raises(ConfigError, match=r"FeaturePipelineConfig.cmvn: 'speaker' is not one of 'none', 'utt', 'spk'"):
        FeaturePipelineConfig(cmvn="speaker")
    with pytest.raises(ConfigError, match=r"ModelConfig.mask: 'rand' is not one of 'alternating', 'random'"):
        ModelConfig(mask="rand")
    with pytest.raises(ConfigError, match=r"ModelConfig.activation: 'ReLU' is not one of"):  # an empty AssertionError
        ModelConfig(activation="ReLU")
    with pytest.raises(ConfigError, match=r"ModelConfig.hidden: expected an integer, got 32.5"):
        ModelConfig(hidden=32.5)
    # whole numbers written as floats, as the command line takes them (YAML's 'epochs: 3.0' and 'hidden: 1e4' were
    # refused there)
    for whole in (32.0, 1e4):
        hidden = ModelConfig.from_dict({"hidden": whole}).hidden
        assert hidden == whole and type(hidden) is int
    with pytest.raises(ConfigError, match=r"ModelConfig.hidden: expected an integer, got 0.001"):
        ModelConfig.from_dict({"hidden": 1e-3})
    with pytest.raises(ConfigError, match=r"ModelConfig.hidden: expected an integer, got '1e4'"):  # text, as '32'
        ModelConfig.from_dict({"hidden": "1e4"})
    from flowaccent.train.config import TrainConfig

    for value in (-1e30, -1e39):  # -1e39 was said to be past float32's largest, not below 0
        with pytest.raises(ConfigError, match=re.escape(f"train: weight_decay must be >= 0, got {value}")):
            TrainConfig(weight_decay=value)


def test_values_are_converted_as_from_dict_converts_them():
    from flowaccent.blurmask.evaluate import DeletionConfig
    from flowaccent.flows.realnvp import ModelConfig
    from flowaccent.train.config import ExperimentConfig

    model = ModelConfig(hidden=np.int64(32), scale_clamp=2)  # numpy's integers, an int for a float
    assert type(model.hidden) is int and type(model.scale_clamp) is float and model.hidden == 32
    config = ExperimentConfig(model={"hidden": 16})
    assert config.model == ModelConfig(hidden=16)
    assert isinstance(DeletionConfig(baselines=["mean", "blur"]).baselines, tuple)  # hashable, as a frozen config is
    assert dataclasses.replace(model, hidden=8).hidden == 8
    with pytest.raises(ConfigError, match=r"ModelConfig.norm"):
        dataclasses.replace(model, norm="layer")
