r"""Training checkpoints: written atomically, never with non-finite weights."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import pickle
import shlex
import shutil
from pathlib import Path
from typing import Any

import torch

from flowaccent.data.atomic import atomic_path
from flowaccent.errors import ConfigError, FlowAccentError
from flowaccent.model import FlowModel


class TrainingError(FlowAccentError):
    r"""Training cannot go on (non-finite loss, non-finite weights)."""


#: The training a checkpoint resumes into: raise it with any change that makes the same checkpoint train on
#: differently (the frame stream, the step's arithmetic, the schedule, the initialisation). A resume from a
#: checkpoint of another format (or of none: the versions before it was written) says so, since it is then not
#: the run an uninterrupted one would have been.
TRAINING_FORMAT = 1


def checkpoint_path(exp: str | Path, which: str) -> Path:
    r"""A run's checkpoint ``which`` (``"last"``: where ``--resume`` goes on from, ``"best"``: the best validation
    NLL so far): ``exp/checkpoints/{which}.pt`` (``flowaccent.cli.train`` spells ``last.pt`` itself: it reads it before
    torch is imported)."""
    if which not in ("last", "best"):
        raise ValueError(f"checkpoint_path: which is 'last' or 'best', got {which!r}")
    return Path(exp) / "checkpoints" / f"{which}.pt"


def resume_command(exp: str | Path, world: int) -> str:
    r"""The command that goes on with the run in ``exp`` of ``world`` processes: ``flowaccent train --exp EXP
    --resume``, under ``torchrun --nproc_per_node N`` for more than one (a stopped 2-process run was told the plain
    command, which refused to resume it with 1)."""
    start = "flowaccent" if world <= 1 else f"torchrun --nproc_per_node {world} $(which flowaccent)"
    return f"{start} train --exp {shlex.quote(str(exp))} --resume"  # 'my exp', pasted, ran --exp my


def kept_world(path: Path) -> int:
    r"""The processes that trained the checkpoint ``path`` where it stopped within an epoch (only those may go on
    with it), else 1; 1 too where it cannot be read."""
    try:
        progress = load_checkpoint(path)["progress"]
        world, inside = progress.get("world", 1), progress.get("step_in_epoch")
    except (ConfigError, KeyError, TypeError, AttributeError):  # not one of ours: the plain command
        return 1
    whole = [type(value) is int for value in (world, inside)]  # an inf, a tensor: not a count of ours
    return world if all(whole) and world > 1 and inside > 0 else 1


@dataclasses.dataclass
class Progress:
    r"""Where training stands: resumes continue from exactly here."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_valid: float = float("inf")
    best_epoch: int = -1
    bad_epochs: int = 0
    history: list = dataclasses.field(default_factory=list)
    #: at a checkpoint within an epoch, the open log window's sums (NLL, -LogP, -LogDet) and frames: the resumed
    #: run's first train record averages the same steps as the uninterrupted run's (it averaged those since)
    window: list = dataclasses.field(default_factory=list)
    #: processes training (torchrun's world size); a checkpoint from before it was recorded: 1
    world: int = 1


def save_checkpoint(path: Path, model: FlowModel, optimizer, progress: Progress, config: dict) -> None:
    r"""Writes model, optimiser, progress and config to ``path`` atomically."""
    for name, param in model.state_dict().items():
        if param.is_floating_point() and not torch.isfinite(param).all():
            raise TrainingError(f"refusing to write {path}: non-finite values in {name}")
    state = {
        "model": model.to_checkpoint(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "progress": dataclasses.asdict(progress),
        "config": config,
        "training_format": TRAINING_FORMAT,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        try:  # opened here: given a path, torch turns every OS error into a RuntimeError of its C++ code
            with open(tmp, "wb") as handle:
                torch.save(state, handle)
        except OSError as error:  # a full disk, a quota, no permission: the checkpoint's name, not the temporary's
            raise OSError(error.errno, error.strerror, str(path)) from error
        except RuntimeError as error:  # torch's writer on a full disk: only "unexpected pos 64 vs 0"
            if shutil.disk_usage(path.parent).free < 64 << 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from error
            raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    r"""Reads a checkpoint written by :func:`save_checkpoint` (or a model file).

    Only tensors and plain values are read (``torch.load(weights_only=True)``): a file that holds other
    Python objects (another tool's pickled module, or anything crafted) is refused, not run; before, loading
    a ``final.pt`` from a shared folder ran whatever code was pickled into it."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path}: a folder, not a checkpoint file (e.g. {path / 'final.pt'})")
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint")
    if path.stat().st_size == 0:  # torch said 'EOFError: '
        raise ConfigError(f"{path}: an empty file, not a checkpoint (a copy or a save cut short?)")
    import warnings
    import zipfile

    try:
        with warnings.catch_warnings():  # a plain pickle: torch's two lines of 'Detected pickle protocol 4 ...' first
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        if isinstance(error, pickle.UnpicklingError) and "Unsupported global" in str(error):
            raise ConfigError(f"{path}: not a flowaccent checkpoint (it holds Python objects other than tensors and "
                              "plain values, which are not loaded: another tool's file?)") from None
        if _other_zip(path):  # torch's words: '[enforce fail at inline_container.cc:180] . file in archive is not ...'
            raise ConfigError(f"{path}: a zip archive but not a torch file (numpy's .npz, such as score's "
                              "baseline_gmm.npz?), not a checkpoint") from None
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        plain = isinstance(error, pickle.UnpicklingError) or (  # a text file: 'KeyError: 101'; not a good file
            not isinstance(error, OSError) and not zipfile.is_zipfile(path))  # that cannot be read (EACCES)
        why = "not a torch file, or a damaged one" if plain else f"{type(error).__name__}: {first}"
        raise ConfigError(f"{path}: not a readable checkpoint ({why})") from None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: not a flowaccent checkpoint (it holds a {type(state).__name__}, not a dict)")
    return state


def load_experiment_model(exp: Path, checkpoint: str | Path | None, command: str) -> FlowModel:
    r"""The model of ``checkpoint`` (default ``exp/final.pt``), refused where ``exp/config.yaml`` describes
    another run (its features, model and prior; with a checkpoint that records it, its whole config but what
    may change on ``--resume``) or ``exp/classes.txt`` other classes: a ``--checkpoint`` of another
    experiment, or a hand-edited config.yaml, would have its scores reported under the wrong configuration
    and training curves. A model whose flow differs per class (the class as context) is refused too: the
    commands that load it (score, blurmask) need one flow for every frame."""
    from flowaccent.train.config import RESUMABLE, ExperimentConfig, config_changes

    if exp.is_file():  # it said 'exp/final.pt/final.pt: no such checkpoint'
        parent = f" ({exp.parent})" if exp.suffix == ".pt" else ""  # its folder, only where the file is a model's
        raise ConfigError(f"--exp {exp} is a file; give the experiment dir{parent}")
    path = Path(checkpoint) if checkpoint else exp / "final.pt"
    kept = [checkpoint_path(exp, which) for which in ("best", "last")]
    if not checkpoint and not path.exists() and (best := next((p for p in kept if p.is_file()), None)):
        last = checkpoint_path(exp, "last")
        raise ConfigError(f"{path}: no such checkpoint: the run has not finished "
                          f"('{resume_command(exp, kept_world(last) if last.is_file() else 1)}' finishes it), or give "
                          f"--checkpoint {best}")
    if not checkpoint and not path.exists():  # it said '<exp>/final.pt: no such checkpoint' of each
        if not exp.exists():
            raise ConfigError(f"--exp {exp}: no such directory")
        if (exp / "summary.json").is_file():
            try:
                came_from = json.loads((exp / "summary.json").read_text())["model"]["exp"]
                came_from = f" ({came_from}, its summary.json says)"
            except (OSError, ValueError, KeyError, TypeError):
                came_from = ""
            raise ConfigError(f"--exp {exp} holds scores ('flowaccent score --out'), not a model; give the experiment "
                              f"dir they came from{came_from}")
        if (exp / "utt2spk").is_file():
            raise ConfigError(f"--exp {exp} is a data dir, not an experiment dir; give the dir 'flowaccent train "
                              f"--exp' wrote")
    state = load_checkpoint(path)
    model = _model_of(state, path)
    _check_one_flow(model, path, command)
    conf, classes = exp / "config.yaml", exp / "classes.txt"
    if not conf.is_file():
        return model
    stated = ExperimentConfig.from_yaml(conf, command).to_dict()
    built = {"features": model.pipeline.config.to_dict(), "model": model.model_config.to_dict(),
             "prior": model.prior_config.to_dict()}
    if isinstance(state.get("config"), dict):  # the whole config of the run that wrote it (seed, data, schedule)
        built = {**ExperimentConfig.from_dict(state["config"], str(path)).to_dict(), **built}
    changed = config_changes(built, stated, "in the model", "in config.yaml")
    differ = [text for key, text in changed.items() if key not in RESUMABLE]
    listed = classes.read_text(encoding="utf-8").split() if classes.is_file() else list(model.class_names)
    if listed != list(model.class_names):
        differ.insert(0, f"classes {', '.join(model.class_names)} in the model, {', '.join(listed)} in {classes.name}")
    if differ:
        raise ConfigError(f"{command}: {path} is not the model {conf} describes ({'; '.join(differ[:3])}); give the "
                          "--exp it was trained in")
    return model


def _check_one_flow(model: FlowModel, path: Path, command: str) -> None:
    r"""Refuses a model whose couplings take the class as context (``model.context_dim``, two or more classes):
    its flow differs per class, and scoring and blur masks need one flow for every frame."""
    if model.model_config.context_dim > 1:
        raise ConfigError(f"{command}: {path} was trained with model.context_dim = {model.model_config.context_dim} "
                          f"(the class as the couplings' context), so its flow differs per class; {command} needs "
                          "one flow for every frame (the marginal over the classes). Score such a model per class "
                          "in Python: FlowModel.score_utterance(feats, cmvn_stats, labels=class_index)")


def _other_zip(path: Path) -> bool:
    r"""Whether ``path`` is a zip archive of no ``data.pkl`` in a folder, which each of ``torch.save``'s holds."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return not any(name.endswith("/data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def load_model(path: str | Path) -> FlowModel:
    r"""The model of a checkpoint or ``final.pt``, in eval mode."""
    return _model_of(load_checkpoint(path), Path(path))


def _model_of(state: dict[str, Any], path: Path) -> FlowModel:
    try:
        return FlowModel.from_checkpoint(state)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
