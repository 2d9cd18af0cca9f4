r"""Experiment configuration: one YAML file with ``features``, ``model``, ``prior`` and ``train``."""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Hashable
from pathlib import Path
from typing import Any, Literal

import yaml

from flowaccent import torchrun
from flowaccent.config import Config
from flowaccent.errors import ConfigError
from flowaccent.features.config import FeaturePipelineConfig
from flowaccent.flows.config import ModelConfig
from flowaccent.prior_config import PriorConfig

#: ``TrainConfig`` fields and their lower bound, and whether the bound itself is excluded: a negative warm-up,
#: decay or clipping norm would train the wrong way without an error, a zero logging interval divide by it.
_RANGES = (
    ("batch_size", 1, False), ("epochs", 1, False), ("lr", 0, True),
    ("lr_decay", 0, True), ("warmup_steps", 0, False), ("weight_decay", 0, False), ("grad_clip", 0, False),
    ("gradient_filter_threshold", 0, True), ("patience", 0, False), ("buffer_frames", 1, False),
    ("standardize_max_utts", 1, False), ("checkpoint_every_steps", 0, False), ("log_every_steps", 1, False),
    ("max_steps_per_epoch", 0, False),
)


#: What may change when a run is resumed: more epochs, where it runs and in what matmul precision (a run trained in
#: tf32 on a GPU could go on on no CPU), how batches are made ahead (the same batches) and how often it logs and
#: checkpoints. Anything else would not continue the same run.
RESUMABLE = {"train.epochs", "train.device", "train.precision", "train.prefetch", "train.log_every_steps",
             "train.checkpoint_every_steps"}


def config_changes(
    first: dict[str, dict], second: dict[str, dict], first_as: str = "there", second_as: str = "given"
) -> dict[str, str]:
    r"""``{"section.field": "section.field: A there, B given"}`` for each field that differs, over the sections
    both configs (``to_dict()``) have."""
    return {
        f"{section}.{key}": f"{section}.{key}: {first[section].get(key)} {first_as}, {value} {second_as}"
        for section, values in second.items()
        if section in first
        for key, value in values.items()
        if first[section].get(key) != value
    }


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    r"""How the flow is trained.

    Attributes:
        batch_size: frames per optimiser step, over all processes.
        epochs: passes over the training frames.
        lr: Adam learning rate (peak, after warm-up). 2e-3: on the demo corpus a 10 x 512 flow
            reached the lab setting's held-out NLL in 7 epochs, against 10 with 1e-3
            (docs/performance.md, time to quality).
        lr_schedule: ``constant``, ``cosine`` (``lr * (1 + cos(pi * epoch / epochs)) / 2``, set at each epoch's
            start: it does not reach 0, the last epoch runs at ``lr * (1 - cos(pi / epochs)) / 2``) or ``exponential``
            (``lr_decay`` per epoch).
        lr_decay: factor per epoch for ``exponential``.
        warmup_steps: linear warm-up from 0.
        weight_decay: Adam weight decay.
        grad_clip: max gradient norm (0: off).
        gradient_filter: pass the gradient from the prior to the latents ``z`` through the
            median-relative :class:`~flowaccent.nn.GradientFilter` over frames (the prior's class means'
            gradient is scaled by the filter's mean ratio, as icefall scales a module's parameters).
        gradient_filter_threshold: its cutoff in multiples of the median.
        valid_fraction: share of utterances held out for the validation NLL.
        valid_by: what the held-out share is drawn by: ``utterance`` (a hash of each utterance's id) or
            ``speaker`` (a hash of each speaker's id, so all of a speaker's utterances fall on one side: the
            validation NLL is of speakers the model has not heard, as a test set's are).
        patience: epochs without a better validation NLL before stopping (0: never stop early).
        buffer_frames: size of the shuffling buffer (bounds memory).
        prefetch: batches read, featurised and shuffled ahead in a background thread while the
            model trains (flowaccent.data.prefetch); 0: in the training loop; -1 (auto): on a GPU
            a whole filling of the shuffling buffer (up to ``buffer_frames // batch_size + 2`` batches) plus 2
            (``buffer_frames // batch_size + 4``:
            the buffer yields its batches in one burst, and a shorter queue hides little of the
            loading), 0 on a CPU, where the thread slowed the model's own threads
            (docs/performance.md). One queue runs over all the epochs: the thread makes the next
            epoch's first batches while this one's last steps, validation and checkpoints run.
            The log's ``data_wait_s`` says how long the steps waited for data.
        standardize_max_utts: utterances used to fit the global standardisation.
        seed: seeds the weights' initialisation and the data order (``model.mask_seed`` the random masks).
        checkpoint_every_steps: also checkpoint inside an epoch this often (0: at epoch ends only).
        log_every_steps: training scalars this often.
        max_steps_per_epoch: cut epochs short (0: whole epochs); for smoke tests.
        device: ``auto`` (cuda when present), ``cpu`` or ``cuda``.
        precision: ``fp32``, ``tf32`` (CUDA) or ``bf16`` (the conditioners' matmuls under bfloat16
            autocast) for the forward passes of training and validation; weights stay float32
            (flowaccent.runtime; speed and NLL effect in docs/performance.md).
        compile: run the training forward (and so its backward) through ``torch.compile``
            (flowaccent.runtime.compiled): the element-wise work around the matmuls fused into
            generated kernels; the first step of each batch shape compiles first (seconds to a
            minute). Needs a C++ compiler on a CPU. Speed in docs/performance.md.
        compile_mode: torch.compile's ``mode`` when ``compile`` is on: ``default``;
            ``reduce-overhead`` replays the compiled step as CUDA graphs on a GPU, where the eager
            step was bound by launching kernels (model only on one H200: 1.4-5.0x the eager step,
            the default mode 1.6-2.2x; through ``flowaccent train`` 1.96x the eager steady rate
            after ~20 s of compiling; on a CPU it is the default mode); ``max-autotune``,
            ``max-autotune-no-cudagraphs``.
        deterministic: ``torch.use_deterministic_algorithms`` (exact resume).
    """

    batch_size: int = 4096
    epochs: int = 20
    lr: float = 2e-3
    lr_schedule: Literal["constant", "cosine", "exponential"] = "cosine"
    lr_decay: float = 0.95
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    gradient_filter: bool = False
    gradient_filter_threshold: float = 10.0
    valid_fraction: float = 0.05
    valid_by: Literal["utterance", "speaker"] = "utterance"
    patience: int = 5
    buffer_frames: int = 200_000
    prefetch: int = -1
    standardize_max_utts: int = 2000
    seed: int = 0
    checkpoint_every_steps: int = 500
    log_every_steps: int = 20
    max_steps_per_epoch: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "tf32", "bf16"] = "fp32"
    compile: bool = False
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    deterministic: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_ranges("train", _RANGES)
        self.check_seed("train")
        if not 0 <= self.valid_fraction < 1:
            raise ConfigError(f"train: valid_fraction must be in [0, 1), got {self.valid_fraction}")
        if self.lr_decay > 1:  # 1.5 grew the learning rate 3300-fold in 20 epochs, without a word
            raise ConfigError(f"train: lr_decay must be <= 1 (a factor per epoch: above 1 the learning rate grows), "
                              f"got {self.lr_decay}")
        if self.prefetch < -1:
            raise ConfigError(f"train: prefetch must be >= 0, or -1 for auto, got {self.prefetch}")
        if self.compile_mode != "default" and not self.compile:
            raise ConfigError(f"train: compile_mode {self.compile_mode} needs compile: true")
        if self.device == "cpu" and self.precision == "tf32":  # --check without data said the config was valid
            raise ConfigError("train.precision tf32 is a CUDA matmul mode; on cpu use fp32 or bf16")


class _StrictLoader(yaml.SafeLoader):
    r"""PyYAML's safe loader, refusing a key given twice in one mapping: the later silently replaced the earlier
    (a second ``train:`` section appended to a copied config dropped the first's settings)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *defaults', merged by PyYAML's own (it was
                continue  # built as a key first: 'could not determine a constructor for the tag ...merge')
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue  # PyYAML's own error names it
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{key}' given twice (first at line {seen[key].line + 1}); each key once",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def _plain_number(loader: _StrictLoader, node: yaml.ScalarNode, read):
    r"""A YAML 1.1 number written in base 60 (``epochs: 1:30``, read as 90) or in octal (``seed: 010``, read as 8) is
    an error naming its line: YAML 1.2 and most readers take both otherwise. Else ``read(loader, node)``."""
    text = str(node.value).replace("_", "")
    if ":" in text or re.fullmatch(r"[-+]?0[0-7]+", text):
        kind = "base 60" if ":" in text else "octal"
        raise yaml.constructor.ConstructorError(
            None, None, f"'{node.value}' is a YAML 1.1 {kind} number ({read(loader, node)}); write it in decimal, or "
            "quote it", node.start_mark)
    return read(loader, node)


# YAML 1.2's floats without a dot (2e-3, 1e4), which YAML 1.1 reads as text: read as numbers here, a quoted '2e-3'
# stays text as a quoted '0.5' does (a float field took the one and refused the other)
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))
_StrictLoader.add_constructor(
    "tag:yaml.org,2002:int", lambda loader, node: _plain_number(loader, node, yaml.SafeLoader.construct_yaml_int))
_StrictLoader.add_constructor(
    "tag:yaml.org,2002:float", lambda loader, node: _plain_number(loader, node, yaml.SafeLoader.construct_yaml_float))


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(Config):
    r"""The whole experiment, as written to ``EXP_DIR/config.yaml``."""

    features: FeaturePipelineConfig = FeaturePipelineConfig()
    model: ModelConfig = ModelConfig()
    prior: PriorConfig = PriorConfig()
    train: TrainConfig = TrainConfig()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model.norm == "batchnorm" and self.train.batch_size < 2:  # --check passed it; step 1's loss was nan
            raise ConfigError("train: batch_size 1 with model.norm batchnorm: BatchNorm's variance of one frame is "
                              "nan; give a batch of 2 or more frames, or model.norm actnorm")

    @classmethod
    def from_yaml(cls, path: str | Path, command: str = "train") -> ExperimentConfig:
        r"""Loads a YAML file strictly: unknown sections or keys and wrong types are errors. Top-level keys named
        ``x-...`` are left out: they hold YAML anchors for the sections (``x-defaults: &d {lr: 0.001}``, then
        ``train: {<<: *d}``), as Docker Compose's extension fields do. ``command``: the one reading it, which
        says a note on it (``score: note: ...``)."""
        path = Path(path)
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such file") from None
        except UnicodeDecodeError as error:  # a Latin-1 comment, a UTF-16 file: a traceback
            raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); save it as UTF-8") \
                from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
            what = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ConfigError(f"{path}: not valid YAML: {where}{what}") from None
        if data is None:  # an empty file (or /dev/null) trained the default 10 x 512 model without a word
            if not torchrun.rank():  # said once per torchrun run
                print(f"{command}: note: {path} holds no settings (empty, or comments only): the defaults are used",
                      file=sys.stderr)
            data = {}
        if isinstance(data, dict):
            data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
            known = [f.name for f in dataclasses.fields(cls)]
            if unknown := [str(k) for k in data if k not in known]:
                raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)} (a key that "
                                  f"holds YAML anchors for them is named x-..., as x-defaults: &defaults)")
        try:
            return cls.from_dict(data, str(path))
        except ConfigError as error:  # a value out of range ('train: lr must be ...') did not name the file
            said = str(error)
            if said.startswith(f"{path}."):  # 'c.yaml.prior.cond_dim: ...' read as a file name: 'c.yaml: prior...'
                raise ConfigError(f"{path}: {said[len(str(path)) + 1:]}") from None
            if said.startswith(str(path)):
                raise
            raise ConfigError(f"{path}: {error}") from None

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_overrides(self, overrides: dict[str, dict[str, Any]]) -> ExperimentConfig:
        r"""Applies ``{"train": {"lr": 0.01}, ...}`` on top, checked like YAML."""
        data = self.to_dict()
        for section, values in overrides.items():
            data[section].update(values)
        return type(self).from_dict(data, "command line")
