r"""``flowaccent train`` (:func:`train`): a run set up, new or resumed (its data, model, checks and experiment dir),
its loop handed to :class:`~flowaccent.train.runner.Runner`, ``final.pt`` written from the best checkpoint."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from flowaccent import torchrun
from flowaccent.data.fingerprint import fingerprint_text
from flowaccent.data.lock import locked_folder
from flowaccent.data.specs import parse_data_specs
from flowaccent.errors import ConfigError, DataDirError
from flowaccent.features.fbank_record import training_record
from flowaccent.model import FlowModel, build_model
from flowaccent.runtime import check_compile, check_precision, precision_note
from flowaccent.train import distributed
from flowaccent.train.checkpoint import Progress, checkpoint_path, load_checkpoint, save_checkpoint
from flowaccent.train.classes import data_warnings, expanded_warning, load_classes, same_dim, short_warning
from flowaccent.train.config import ExperimentConfig
from flowaccent.train.experiment import check_finished, earlier_run, refused_changes, write_experiment
from flowaccent.train.frames import FrameSource, FrameStream, split_valid, utterance_refs
from flowaccent.train.model_size import TRAINING_COPIES, check_model_size
from flowaccent.train.optimizer import make_optimizer
from flowaccent.train.runner import Runner
from flowaccent.train.start import start_run
from flowaccent.words import counted


@dataclasses.dataclass(frozen=True)
class TrainSummary:
    r"""Outcome of :func:`train`."""

    exp_dir: Path
    epochs_run: int
    global_step: int
    best_valid_nll: float
    final: Path
    #: what ``check`` found: ``new`` (a run would start), ``resume`` (it would go on), ``done`` (nothing is left to
    #: train: it has trained its epochs, or stopped early), ``final`` (a finished run whose ``checkpoints/last.pt``
    #: is gone, of this config and data); "" after a run
    would: str = ""
    #: the epoch of the best validation NLL where the run stopped early (``train.patience``), else 0
    stopped_early_at_best: int = 0
    #: the step a resumed run went on from (its last checkpoint's); None for a new run
    resumed_at: int | None = None


def train(
    config: ExperimentConfig, exp_dir: str | Path, data_specs: Sequence[str], resume: bool = False, quiet: bool = False,
    check: bool = False, config_file: str | Path | None = None,
) -> TrainSummary:
    r"""Trains a flow on the data dirs (one class each) into ``exp_dir``; see ``flowaccent train --help``.
    ``check``: only what would refuse the run (its config and data; with ``resume``, both against its last
    checkpoint), training and writing nothing; the summary says where it would go on from (epoch 0: a new run).
    ``config_file``: the YAML ``config`` was read from, if any. A new run writes its own ``exp_dir/config.yaml``;
    one there that no run wrote (no ``data.txt`` beside it) is refused rather than overwritten, unless it is
    ``config_file`` or says the same as ``config``.

    ``exp_dir`` is locked for the run (``.train.lock``, by the main process): a second training into it
    at the same time is refused. Two started within half a second both ran, their logs and checkpoints
    mixed, before the checkpoint that refuses a second run existed. The run seeds torch's generators and sets
    its deterministic mode; both are as they were when it returns (a notebook's own seed survives it)."""
    if not isinstance(config, ExperimentConfig):
        raise ConfigError(f"the config is an ExperimentConfig (ExperimentConfig.from_yaml(path), "
                          f".from_dict(d)), got {type(config).__name__}")
    main_process = torchrun.rank() == 0
    distributed.setup(config.train.device)  # under torchrun, all join before the main one can fail (on the lock):
    # the others waited in the rendezvous until torchrun gave up on them (30 s), deaf to its SIGTERM
    # no 'train: ' before it: the command line kept it after its own ('flowaccent train: error: train: ...')
    busy = f"{exp_dir} is being trained by another process now; wait for it or give another --exp"
    if int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "WORLD_SIZE" not in os.environ:
        busy += (f" (this is one of {os.environ['SLURM_NTASKS']} Slurm tasks, each a whole training: for one run on "
                 "several processes start torchrun with srun, one task per node)")
    with (locked_folder(Path(exp_dir), LOCK, busy) if main_process else contextlib.nullcontext(), _torch_state_kept(),
          torch.inference_mode(False), torch.enable_grad()):  # a caller's no_grad: torch's error, 10 frames deep
        return _train(config, exp_dir, data_specs, resume, quiet, check, config_file)


@contextlib.contextmanager
def _torch_state_kept():
    r"""Restores torch's random generators (CPU and CUDA) and deterministic mode on exit."""
    deterministic = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    with torch.random.fork_rng(devices=[]):  # the CPU generator
        try:
            yield
        finally:
            set_deterministic(*deterministic)
            if cuda is not None:
                torch.cuda.set_rng_state_all(cuda)


def set_deterministic(mode: bool, warn_only: bool, compile: bool = False) -> None:
    r"""``torch.use_deterministic_algorithms(mode, warn_only=warn_only)``, which imports Inductor (and sympy: 0.86 s
    at every ``flowaccent train``, and a SIGTERM from torchrun inside that import left sympy half-imported, so
    the restore on the way out failed with 'module sympy has no attribute core' and a traceback) to set its
    ``deterministic`` option, which only compiled code reads: without ``compile``, and while Inductor is not
    loaded, the flag alone is set. Nothing is done where the mode is set already."""
    if (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) == (
        mode, warn_only
    ) and not compile:
        return
    flag = getattr(torch._C, "_set_deterministic_algorithms", None)
    if compile or flag is None or "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        flag(mode, warn_only=warn_only)


#: The lock file of a running training, in its experiment dir.
LOCK = ".train.lock"


def _train(
    config: ExperimentConfig, exp_dir: str | Path, data_specs: Sequence[str], resume: bool, quiet: bool,
    check: bool = False, config_file: str | Path | None = None,
) -> TrainSummary:
    cfg = config.train
    env = _settings(cfg)
    exp = Path(exp_dir)
    specs, spk_cmvn = parse_data_specs(data_specs), config.features.cmvn == "spk"
    dirs, class_names, labels = load_classes(specs, spk_cmvn)
    for line in data_warnings(specs, dirs) if env.is_main else ():
        print(line, file=sys.stderr)
    with contextlib.nullcontext() if env.is_main else contextlib.redirect_stderr(io.StringIO()):  # warned once
        record = training_record([d.path for d in dirs])  # first: dirs of other fbank options refused, exp untouched
    refs = utterance_refs(dirs, labels)
    if env.is_main and (line := short_warning(refs, config.features.context)):
        print(line, file=sys.stderr)
    train_refs, valid_refs = _split(refs, class_names, cfg)
    if env.is_main and cfg.valid_fraction > 0 and not valid_refs:
        print(_none_held_out(refs, cfg), file=sys.stderr)
    source = FrameSource(dirs, same_dim(dirs), with_cmvn=spk_cmvn)
    last = checkpoint_path(exp, "last")
    on_host = env.device.type == "cpu"  # elsewhere the gradients and Adam's moments are on the device
    check_model_size(config.model, config.features.output_dim(source.readers[0].expected_dim),
                     TRAINING_COPIES if on_host else 1)
    try:
        model = build_model(config.features, source.readers[0].expected_dim, config.model, config.prior, class_names)
    except ConfigError:  # e.g. --features.splice on --resume: cond_dim too large; say what the run refuses first
        if resume and last.exists():
            refused_changes(load_checkpoint(last), config.to_dict(), last, config_file)
        raise
    _check_model(model, config, class_names, env)
    if env.is_main and not quiet:  # the dim and the size were said nowhere (a 1320-d model from deltas and splicing)
        print(f"train: {_model_line(model, config)}", file=sys.stderr)
    model.to(env.device)
    optimizer = make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay)
    texts = _experiment_texts(specs, dirs, class_names, spk_cmvn)
    if resume and not last.exists() and (exp / "final.pt").exists():  # its checkpoints/ removed: nothing trains
        progress = check_finished(exp, config, config_file, texts)
        source.close()
        if not check and env.is_main:
            print(f"train: {exp} holds a finished run of this config and data (final.pt; its checkpoints/last.pt is "
                  "gone): nothing to train; final.pt is kept", file=sys.stderr)
        return TrainSummary(exp, progress.epoch, progress.global_step, progress.best_valid, exp / "final.pt",
                            would="final" if check else "")
    state, changes = earlier_run(exp, last, resume, config, config_file, texts)
    if resume and state is None and env.is_main:
        print(f"train: {last} does not exist yet: {'a run would start' if check else 'starting'} from the "
              "beginning", file=sys.stderr)
    if check and state is None:  # nothing to hold it against: the data and config are fine
        source.close()
        return TrainSummary(exp, 0, 0, math.inf, exp / "final.pt", would="new")
    progress = start_run(model, optimizer, last, state, changes, source, train_refs, config, env, check)
    if check:
        source.close()
        left = progress.epoch < cfg.epochs and not (cfg.patience and progress.bad_epochs >= cfg.patience)
        return TrainSummary(exp, progress.epoch, progress.global_step, progress.best_valid, exp / "final.pt",
                            would="resume" if left else "done")
    resumed_at = progress.global_step if state is not None else None
    if env.is_main:
        write_experiment(exp, progress, config, texts, record)
    _fit(Runner(model, optimizer, config, exp, env, quiet), source, train_refs, valid_refs, progress)
    if env.distributed:
        distributed.broadcast_buffers(model)  # BatchNorm's running statistics: rank 0's, as it saved them
        # one write, line and newline together: two ranks' lines ran into one ("...ebaetrain: rank 0/2: ...")
        sys.stderr.write(f"train: rank {env.rank}/{env.world}: parameter digest {parameter_digest(model)}\n")
        sys.stderr.flush()
    if env.is_main:
        _write_final(exp, last, config.to_dict())
    early = bool(cfg.patience) and progress.bad_epochs >= cfg.patience
    return TrainSummary(exp, progress.epoch, progress.global_step, progress.best_valid, exp / "final.pt",
                        stopped_early_at_best=progress.best_epoch if early else 0, resumed_at=resumed_at)


def _settings(cfg) -> distributed.DistEnv:
    r"""The run's process group (:func:`distributed.setup`), its ``train`` section ``cfg``'s checks that need the
    device (precision, compile, batch per process) with their notes, and torch's seed and deterministic mode."""
    env = distributed.setup(cfg.device)
    check_precision(env.device, cfg.precision, "train")
    _check_batch(cfg.batch_size, env)
    if env.is_main and (note := precision_note(env.device, cfg.precision, "train")):
        print(note, file=sys.stderr)
    if cfg.compile:
        check_compile(env.device, "train")
    torch.manual_seed(cfg.seed)
    set_deterministic(cfg.deterministic, True, cfg.compile)
    return env


def _experiment_texts(specs, dirs, class_names: list[str], spk_cmvn: bool) -> tuple[str, str, str]:
    r"""What the experiment dir keeps of the run's data (``classes.txt``, ``data.txt``, ``data_digest.txt``), and a
    resume must match (:func:`~flowaccent.train.experiment.earlier_run`)."""
    classes_text = "".join(f"{c}\n" for c in class_names)
    data_text = "".join(f"{n + '=' if n else ''}{p.absolute()}\n" for n, p in specs)
    labelled = [d.path for (name, _), d in zip(specs, dirs) if name is None and d.has("utt2accent")]
    return classes_text, data_text, fingerprint_text(dirs, spk_cmvn, labelled)


def _fit(runner: Runner, source: FrameSource, train_refs, valid_refs, progress: Progress) -> None:
    r"""``runner``'s epochs from ``progress`` on: each process streams its share of ``train_refs``' frames (batches of
    ``train.batch_size`` over the processes) and validates its share of ``valid_refs``; ``source`` closed after."""
    cfg, env, pipeline = runner.config.train, runner.env, runner.model.pipeline
    stream = FrameStream(
        source, train_refs, pipeline, cfg.batch_size // env.world, cfg.buffer_frames, cfg.seed, env.rank, env.world
    )
    valid_source = source.twin()  # its own open files: see Runner.fit
    valid_stream = FrameStream(  # the whole held-out set: each process validates its share (held_out_nll)
        valid_source, valid_refs, pipeline, cfg.batch_size, cfg.buffer_frames, cfg.seed, env.rank, env.world
    )
    try:
        runner.fit(stream, valid_stream, progress)
    finally:
        runner.close()
        source.close()
        valid_source.close()


def _write_final(exp: Path, last: Path, config_dict: dict) -> None:
    r"""``exp/final.pt``: the model of the best checkpoint (``last`` where there is none), without its optimiser."""
    best = checkpoint_path(exp, "best")
    state = load_checkpoint(best if best.exists() else last)
    save_checkpoint(
        exp / "final.pt", FlowModel.from_checkpoint(state["model"]), None, Progress(**state["progress"]), config_dict
    )


def _split(refs, class_names: list[str], cfg) -> tuple[list, list]:
    r"""``(train, valid)`` utterance refs of the validation split (``cfg``: the ``train`` section); an error where no
    training utterance is left, or none of a class."""
    train_refs, valid_refs = split_valid(refs, cfg.valid_fraction, cfg.valid_by)
    split = f"train.valid_fraction={cfg.valid_fraction}, valid_by {cfg.valid_by}"
    if not train_refs:
        raise DataDirError(f"no training utterances left after the validation split ({split}); give more "
                           "utterances, or --train.valid-fraction 0 to hold none out")
    for label, name in enumerate(class_names):
        if not any(r.label == label for r in train_refs):
            raise DataDirError(
                f"class '{name}' has no training frames (all its utterances fell into the validation split "
                f"of {split}); give it more data or lower valid_fraction"
            )
    return train_refs, valid_refs


def _none_held_out(refs, cfg) -> str:
    r"""The warning where ``train.valid_fraction`` > 0 held out nothing (few speakers, few utterances): the run said
    only 'no validation' at its end, its patience silently void."""
    units = {r.spk for r in refs} if cfg.valid_by == "speaker" else refs
    patience = f" and train.patience {cfg.patience} has no effect" if cfg.patience else ""
    return (f"train: warning: train.valid_fraction {cfg.valid_fraction} held out none of the "
            f"{counted(len(units), cfg.valid_by)} (a hash of each id picks them): no validation NLL, so no best "
            f"checkpoint (final.pt is the last epoch's){patience}; give more data, or a larger valid_fraction")


def _model_line(model: FlowModel, config: ExperimentConfig) -> str:
    r"""What is trained, in a line: the frames' dim and how the pipeline makes them, the parameters, the classes."""
    features = config.features
    made = [f"deltas to order {features.deltas}"] * bool(features.deltas) + [
        f"{2 * features.splice + 1} frames spliced"] * bool(features.splice)
    how = f", {' and '.join(made)}" if made else ""
    parameters = sum(p.numel() for p in model.parameters())
    return (f"{model.dim}-d frames ({model.pipeline.input_dim}-d stored features{how}), {parameters:,} parameters, "
            f"{len(model.class_names)} class(es) ({', '.join(model.class_names)}), prior.cond_dim "
            f"{config.prior.cond_dim}")


def _check_model(model: FlowModel, config: ExperimentConfig, class_names: list[str], env) -> None:
    r"""Refuses a ``model.context_dim`` that is neither 0 nor the number of classes; the main process warns of
    features expanded into many dims, of classes a ``cond_dim`` of 0 ignores, of a ``cond_dim`` with one class, and
    of a flow that differs per class."""
    if env.is_main and (line := expanded_warning(model.pipeline.input_dim, model.dim)):
        print(line, file=sys.stderr)
    if env.is_main and len(class_names) > 1 and config.prior.cond_dim == 0:
        print(f"train: warning: {len(class_names)} classes ({', '.join(class_names)}) but prior.cond_dim 0: the prior "
              "ignores them (a plain flow; its llr is 0 for every frame); give prior.cond_dim > 0 for a DNF",
              file=sys.stderr)
    if env.is_main and len(class_names) == 1 and config.prior.cond_dim > 0:  # the reverse was warned of alone
        print(f"train: warning: prior.cond_dim {config.prior.cond_dim} but one class ({class_names[0]}): the "
              "class-conditional prior has one mean to learn (no llr between classes); give each class its data as "
              "NAME=DATA_DIR (native=DIR zh=DIR) for a DNF, or prior.cond_dim 0 for a plain flow", file=sys.stderr)
    if config.model.context_dim not in (0, len(class_names)):
        raise ConfigError(f"model.context_dim must be 0 or the number of classes ({len(class_names)})")
    if env.is_main and config.model.context_dim > 1:
        print(f"train: note: with model.context_dim {config.model.context_dim} the couplings take the class as "
              "context, so the flow differs per class: `flowaccent score` and `blurmask` refuse such a model (they "
              "need one flow for every frame); score it per class with FlowModel.score_utterance(..., labels=c)",
              file=sys.stderr)


def _check_batch(batch_size: int, env: distributed.DistEnv) -> None:
    r"""Refuses a ``train.batch_size`` of less than a frame per process (each divided by zero: a traceback per rank),
    and says where it is not a multiple of the processes (each takes ``batch_size // world`` frames)."""
    if batch_size < env.world:
        raise ConfigError(f"train.batch_size {batch_size} is less than a frame for each of the {env.world} processes; "
                          "raise it, or use fewer processes")
    if batch_size % env.world and env.is_main:
        share = batch_size // env.world
        print(f"train: note: train.batch_size {batch_size} is {share} frames for each of the {env.world} processes: "
              f"steps of {share * env.world} frames", file=sys.stderr)


def parameter_digest(model: torch.nn.Module) -> str:
    r"""SHA-1 of every parameter and buffer, to check that processes hold the same model."""
    h = hashlib.sha1()
    for name, value in model.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
