r"""The training loop of ``flowaccent train``: streaming, checkpoints, exact resume, early stopping."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from flowaccent import torchrun
from flowaccent.data.atomic import atomic_link, atomic_write_json, atomic_write_text
from flowaccent.data.datadir import UNUSED_BY_MODELS, DataDir, load_data_dir
from flowaccent.data.fingerprint import changed_parts, fingerprint_text
from flowaccent.data.lock import locked_folder
from flowaccent.data.prefetch import Inline, Prefetched, prefetch, resolve_depth
from flowaccent.data.specs import parse_data_specs
from flowaccent.errors import ConfigError, DataDirError
from flowaccent.features.fbank_record import RECORD, training_record
from flowaccent.flows.packed import packed_inference
from flowaccent.model import FlowModel, build_model
from flowaccent.runtime import check_compile, check_precision, compiled, compute_precision, precision_note
from flowaccent.train import distributed
from flowaccent.train.checkpoint import TRAINING_FORMAT, Progress, TrainingError, load_checkpoint, save_checkpoint
from flowaccent.train.config import RESUMABLE, ExperimentConfig, config_changes
from flowaccent.train.frames import (
    FrameSource,
    FrameStream,
    split_valid,
    standardization_sample,
    utterance_refs,
)
from flowaccent.train.interrupts import HeldSignals
from flowaccent.train.optimizer import make_optimizer
from flowaccent.transfer import HostCopy, pinned, to_device


@dataclasses.dataclass(frozen=True)
class TrainSummary:
    r"""Outcome of :func:`train`."""

    exp_dir: Path
    epochs_run: int
    global_step: int
    best_valid_nll: float
    final: Path
    #: what ``check`` found: ``new`` (a run would start), ``resume`` (it would go on), ``done`` (nothing is left to
    #: train: it has trained its epochs, or stopped early); "" after a run
    would: str = ""


def load_classes(
    specs: Sequence[tuple[str | None, Path]], need_cmvn: bool
) -> tuple[list[DataDir], tuple[str, ...], list[dict[str, int]]]:
    r"""Loads the data dirs and names each utterance's class.

    The class of an utterance is the explicit ``name=`` of its dir, else its
    ``utt2accent`` value when the dir has one, else the dir's name.
    """
    _check_distinct(specs)
    require = ("feats.scp", "utt2num_frames") + (("cmvn.scp",) if need_cmvn else ())
    dirs, names, per_utt = [], [], []
    for name, path in specs:
        data = load_data_dir(path, require=require, unused=UNUSED_BY_MODELS)
        accents = data.table("utt2accent") if name is None and data.has("utt2accent") else {}
        utt_class = {utt: name or accents.get(utt) or data.name for utt in data.utts}
        for cls in utt_class.values():
            if cls not in names:
                if len(cls.split()) != 1 or cls.strip() != cls:  # classes.txt, one a line, is read back split
                    where = "its NAME" if name else f"{data.path / 'utt2accent'}" if accents else "its folder's name"
                    raise ConfigError(f"{path}: class '{cls}' ({where}) holds whitespace, which the model's "
                                      f"classes.txt and score cannot keep apart; give NAME=DATA_DIR another NAME")
                names.append(cls)
        dirs.append(data)
        per_utt.append(utt_class)
    labels = [{utt: names.index(c) for utt, c in m.items()} for m in per_utt]
    return dirs, tuple(names), labels


def _check_distinct(specs: Sequence[tuple[str | None, Path]]) -> None:
    r"""Refuses a data dir given twice (its frames counted twice, or under two classes at once)."""
    seen: dict[Path, str] = {}
    for name, path in specs:
        key, label = path.resolve(), f"'{name}'" if name else "unnamed"
        if key in seen:
            both = f" (as {seen[key]} and {label})" if seen[key] != label else ""
            raise ConfigError(f"data dir {path} is given twice{both}; its utterances would be trained on twice")
        seen[key] = label


def data_warnings(specs: Sequence[tuple[str | None, Path]], dirs: list[DataDir]) -> list[str]:
    r"""Lines for what is legal but often a mistake: dirs sharing utterance ids (a copy of one dir?), and a
    class pooled from several dirs that only their folder names made one (``a/train`` and ``b/train``)."""
    lines = []
    for i, a in enumerate(dirs):
        for b in dirs[i + 1 :]:
            if shared := len(set(a.utts) & set(b.utts)):
                lines.append(f"train: warning: data dirs {a.path} and {b.path} share {shared} utterance id(s) "
                             "(a copy of the same data?)")
    by_folder: dict[str, list[Path]] = {}
    for (name, _), data in zip(specs, dirs):
        if name is None and not data.has("utt2accent"):
            by_folder.setdefault(data.name, []).append(data.path)
    for cls, paths in by_folder.items():
        if len(paths) > 1:
            lines.append(f"train: warning: class '{cls}' pools {len(paths)} data dirs named only by their folder "
                         f"({', '.join(map(str, paths))}); give each NAME=DATA_DIR to keep them apart")
    return lines


#: Kaldi's filterbanks and MFCCs have at most this many coefficients (80 mel bins); more, given deltas or splicing
#: again, is usually features that were spliced or given deltas already.
MAX_RAW_DIM = 80


def expanded_warning(input_dim: int, model_dim: int) -> str | None:
    r"""A line where stored features of more than :data:`MAX_RAW_DIM` dims get deltas or splicing (the lab's 440-d
    features are 40-d fbank spliced by the pipeline: 440-d arks spliced again make a 4840-d flow)."""
    if input_dim <= MAX_RAW_DIM or model_dim == input_dim:
        return None
    return (f"train: warning: the stored features are {input_dim}-d and the feature pipeline makes {model_dim}-d "
            f"frames of them (deltas/splicing); if the arks hold features spliced or with deltas already "
            f"(splice-feats, add-deltas), give --features.deltas 0 --features.splice 0")


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
    busy = f"train: {exp_dir} is being trained by another process now; wait for it or give another --exp"
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
    env = distributed.setup(cfg.device)
    check_precision(env.device, cfg.precision, "train")
    _check_batch(cfg.batch_size, env)
    if env.is_main and (note := precision_note(env.device, cfg.precision, "train")):
        print(note, file=sys.stderr)
    if cfg.compile:
        check_compile(env.device, "train")
    exp = Path(exp_dir)
    torch.manual_seed(cfg.seed)
    set_deterministic(cfg.deterministic, True, cfg.compile)

    specs = parse_data_specs(data_specs)
    dirs, class_names, labels = load_classes(specs, config.features.cmvn == "spk")
    for line in data_warnings(specs, dirs) if env.is_main else ():
        print(line, file=sys.stderr)
    refs = utterance_refs(dirs, labels)
    train_refs, valid_refs = split_valid(refs, cfg.valid_fraction, cfg.valid_by)
    split = f"train.valid_fraction={cfg.valid_fraction}, valid_by {cfg.valid_by}"
    if not train_refs:
        raise DataDirError(f"no training utterances left after the validation split ({split})")
    for label, name in enumerate(class_names):
        if not any(r.label == label for r in train_refs):
            raise DataDirError(
                f"class '{name}' has no training frames (all its utterances fell into the validation split "
                f"of {split}); give it more data or lower valid_fraction"
            )
    source = FrameSource(dirs, _input_dim(dirs[0]), with_cmvn=config.features.cmvn == "spk")
    last = exp / "checkpoints" / "last.pt"
    try:
        model = build_model(config.features, source.readers[0].expected_dim, config.model, config.prior, class_names)
    except ConfigError:  # e.g. --features.splice on --resume: cond_dim too large; say what the run refuses first
        if resume and last.exists():
            _refused_changes(load_checkpoint(last), config.to_dict(), last)
        raise
    if env.is_main and (line := expanded_warning(model.pipeline.input_dim, model.dim)):
        print(line, file=sys.stderr)
    if env.is_main and len(class_names) > 1 and config.prior.cond_dim == 0:
        print(f"train: warning: {len(class_names)} classes ({', '.join(class_names)}) but prior.cond_dim 0: the prior "
              "ignores them (a plain flow; its llr is 0 for every frame); give prior.cond_dim > 0 for a DNF",
              file=sys.stderr)
    if config.model.context_dim not in (0, len(class_names)):
        raise ConfigError(f"model.context_dim must be 0 or the number of classes ({len(class_names)})")
    if env.is_main and config.model.context_dim > 1:
        print(f"train: note: with model.context_dim {config.model.context_dim} the couplings take the class as "
              "context, so the flow differs per class: `flowaccent score` and `blurmask` refuse such a model (they "
              "need one flow for every frame); score it per class with FlowModel.score_utterance(..., labels=c)",
              file=sys.stderr)
    model.to(env.device)
    optimizer = make_optimizer(model.parameters(), cfg.lr, cfg.weight_decay)
    config_dict = config.to_dict()
    classes_text = "".join(f"{c}\n" for c in class_names)
    data_text = "".join(f"{n + '=' if n else ''}{p.absolute()}\n" for n, p in specs)
    labelled = [d.path for (name, _), d in zip(specs, dirs) if name is None and d.has("utt2accent")]
    digest_text = fingerprint_text(dirs, config.features.cmvn == "spk", labelled)
    state, changes = None, None
    if not last.exists() and (exp / "final.pt").exists():  # checkpoints/ removed to save space: a new run, or
        # --resume's fresh start, trained over the finished model, its config.yaml and its log
        raise ConfigError(f"{exp}: holds a finished run (final.pt) whose checkpoints/last.pt is gone, so it cannot "
                          f"be resumed, and a new run would overwrite it; train in another --exp (or remove "
                          f"{exp / 'final.pt'} to train here afresh)")
    if resume and last.exists():
        state = load_checkpoint(last)
        changes = _refused_changes(state, config_dict, last)  # first: --features.cmvn utt changed the data's digest too
        _check_same_data(exp, classes_text, data_text, digest_text)
    elif last.exists():
        raise ConfigError(f"{exp}: holds a training run already; pass --resume or use another dir")
    else:
        _check_own_config(exp, config, config_file)
    if resume and state is None and env.is_main:
        print(f"train: {last} does not exist yet: {'a run would start' if check else 'starting'} from the "
              "beginning", file=sys.stderr)
    if check and state is None:  # nothing to hold it against: the data and config are fine
        source.close()
        return TrainSummary(exp, 0, 0, math.inf, exp / "final.pt", would="new")
    progress = _start(model, optimizer, last, state, changes, source, train_refs, config, env, check)
    if check:
        source.close()
        left = progress.epoch < cfg.epochs and not (cfg.patience and progress.bad_epochs >= cfg.patience)
        return TrainSummary(exp, progress.epoch, progress.global_step, progress.best_valid, exp / "final.pt",
                            would="resume" if left else "done")
    if env.is_main:
        (exp / "log").mkdir(parents=True, exist_ok=True)
        trim_log(exp / "log" / "train.jsonl", progress, cfg.patience)
        atomic_write_text(exp / "config.yaml", config.to_yaml())
        atomic_write_text(exp / "classes.txt", classes_text)
        atomic_write_text(exp / "data.txt", data_text)
        atomic_write_text(exp / DIGESTS, digest_text)
        _keep_fbank_record(exp, [d.path for d in dirs])
    runner = _Runner(model, optimizer, config, exp, env, quiet)
    stream = FrameStream(
        source,
        train_refs,
        model.pipeline,
        cfg.batch_size // env.world,
        cfg.buffer_frames,
        cfg.seed,
        env.rank,
        env.world,
    )
    valid_source = source.twin()  # its own open files: see _Runner.fit
    valid_stream = FrameStream(  # the whole held-out set: each process validates its share (held_out_nll)
        valid_source, valid_refs, model.pipeline, cfg.batch_size, cfg.buffer_frames, cfg.seed, env.rank, env.world
    )
    try:
        runner.fit(stream, valid_stream, progress)
    finally:
        runner.close()
        source.close()
        valid_source.close()
    if env.distributed:
        distributed.broadcast_buffers(model)  # BatchNorm's running statistics: rank 0's, as it saved them
        # one write, line and newline together: two ranks' lines ran into one ("...ebaetrain: rank 0/2: ...")
        sys.stderr.write(f"train: rank {env.rank}/{env.world}: parameter digest {parameter_digest(model)}\n")
        sys.stderr.flush()
    final = exp / "final.pt"
    if env.is_main:
        best = exp / "checkpoints" / "best.pt"
        state = load_checkpoint(best if best.exists() else last)
        save_checkpoint(
            final, FlowModel.from_checkpoint(state["model"]), None, Progress(**state["progress"]), config_dict
        )
    return TrainSummary(exp, progress.epoch, progress.global_step, progress.best_valid, final)


def trim_log(path: Path, progress: Progress, patience: int = 0) -> None:
    r"""Keeps the records of ``log/train.jsonl`` that the run being resumed from ``progress`` had written by its
    checkpoint: a run killed after it logged steps past its last checkpoint logged them twice after
    ``--resume``, and a line cut short by the kill made the log unreadable (``report`` failed on it).

    An epoch's record (and the early stop's, with ``patience``) that the checkpoint holds but the log lost, the
    run stopped between the epoch's checkpoint and its record, is written again from the checkpoint's history,
    marked ``"restored": true`` and without the epoch's seconds, which only the lost record had."""
    kept, logged, stopped_logged = [], set(), False
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if path.exists() else []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # cut short
            continue
        if not isinstance(record, dict):
            continue
        if record.get("event") == "train" and record.get("step", 0) > progress.global_step:
            continue
        if record.get("event") in ("epoch", "early_stop") and record.get("epoch", 0) > progress.epoch:
            continue
        if record.get("event") == "epoch":
            logged.add(record.get("epoch"))
        stopped_logged |= record.get("event") == "early_stop"
        kept.append(line + "\n")
    kept += [json.dumps({"event": "epoch", **r, "restored": True}) + "\n" for r in progress.history
             if r["epoch"] not in logged]
    if patience and progress.bad_epochs >= patience and not stopped_logged:
        kept.append(json.dumps({"event": "early_stop", "epoch": progress.epoch, "best_epoch": progress.best_epoch,
                                "restored": True}) + "\n")
    if lines or kept:
        atomic_write_text(path, "".join(kept))


def _input_dim(data: DataDir) -> int:
    r"""The dim of the first utterance's features in ``feats.scp`` (one line of it: an scp reader of the whole
    took 0.5 s of a 200k-utterance dir's start-up)."""
    from flowaccent.data.kaldi_io import check_matrix, read_matrix

    scp = data.path / "feats.scp"
    for utt, rxfile in data.table("feats.scp").items():
        return check_matrix(read_matrix(rxfile, utt, str(scp)), f"{scp}: utterance '{utt}'").shape[1]
    raise DataDirError(f"{scp}: no utterances")


def _check_own_config(exp: Path, config: ExperimentConfig, config_file: str | Path | None) -> None:
    r"""Refuses a new run into ``exp`` whose ``config.yaml`` it would overwrite where that file is the user's own
    (no run wrote it: no ``data.txt`` beside it), is not ``config_file`` and says something else than ``config``:
    a config edited there and then not given with ``--config`` was replaced by the defaults, the edits lost."""
    own = exp / "config.yaml"
    if not own.is_file() or (exp / "data.txt").exists():
        return
    if config_file is not None and Path(config_file).is_file() and own.samefile(config_file):
        return
    try:
        theirs = ExperimentConfig.from_yaml(own).to_dict()
    except ConfigError:
        theirs = None
    if theirs == config.to_dict():
        return
    if theirs is None:
        differ = " (not a valid config)"
    else:
        changes = list(config_changes(theirs, config.to_dict(), "there", "in this run").values())
        more = f"; and {len(changes) - 3} more" if len(changes) > 3 else ""
        differ = f" ({'; '.join(changes[:3])}{more})"
    raise ConfigError(f"{own}: a config no run wrote, which a new run would overwrite with its own{differ}; give "
                      f"--config {own} to train with it, or move it away")


def _keep_fbank_record(exp: Path, dirs: list[Path]) -> None:
    r"""``exp/fbank.json``: the fbank options the training dirs share (a :class:`ConfigError` where they
    differ), so scoring can refuse features computed otherwise; none where the dirs have no record."""
    record = training_record(dirs)
    if record is None:
        (exp / RECORD).unlink(missing_ok=True)
    else:
        atomic_write_json(exp / RECORD, record)


#: The digests of the training dirs' tables and archives when the run began (:mod:`flowaccent.data.fingerprint`).
DIGESTS = "data_digest.txt"


def _check_same_data(exp: Path, classes_text: str, data_text: str, digest_text: str) -> None:
    r"""Refuses to resume ``exp`` with other classes or data dirs than its run began with (``classes.txt``,
    ``data.txt``, written when it began; not checked where a run from before they existed lacks them): the
    model's classes are fixed, and an exact resume replays the same frames. Data dirs are compared as resolved
    paths (``../x/data`` and ``data`` from ``x`` are one dir); their contents by :data:`DIGESTS` (a new split or
    new features written into the same dirs)."""

    def resolved(text: str) -> list[tuple[str | None, Path]]:
        return [(name, path.resolve()) for name, path in parse_data_specs(text.splitlines())]

    def refuse(what: str, stored: str, given: str, hint: str = "") -> None:
        raise ConfigError(f"{exp}: the {what} differ from the run being resumed: {', '.join(stored.split())} "
                          f"there, {', '.join(given.split())} given{hint}")

    classes, data = exp / "classes.txt", exp / "data.txt"
    order = f" (the same, in another order: give the dirs in the order the run began with, or none, to read {data})"
    if classes.exists() and (stored := classes.read_text(encoding="utf-8")) != classes_text:
        refuse("classes", stored, classes_text, order if sorted(stored.split()) == sorted(classes_text.split()) else "")
    if data.exists() and resolved(stored := data.read_text(encoding="utf-8")) != resolved(data_text):
        same = sorted(resolved(stored), key=str) == sorted(resolved(data_text), key=str)
        refuse("data dirs", stored, data_text, order if same else f" (if the same data moved, edit {data})")
    digests = exp / DIGESTS
    if digests.exists() and (changed := changed_parts(digests.read_text(encoding="utf-8"), digest_text)):
        what = "; ".join(f"{path}: {', '.join(parts)}" for path, parts in changed)
        raise ConfigError(f"{exp}: the training data changed since the run began ({what}): an exact resume "
                          "replays the frames it began with; train afresh in another --exp, or remove this one")


def _refused_changes(state: dict, config_dict: dict, last: Path) -> tuple[dict, dict[str, str]]:
    r"""``(stored config, its changes)`` of the checkpoint ``state`` of ``last`` against ``config_dict``; a
    :class:`ConfigError` naming the changes ``--resume`` does not allow."""
    stored = ExperimentConfig.from_dict(state["config"], str(last)).to_dict()  # options added since: defaults
    changed = config_changes(stored, config_dict)
    if refused := [text for key, text in changed.items() if key not in RESUMABLE]:
        raise ConfigError(f"{last}: the config differs from the run being resumed: {'; '.join(refused)} "
                          f"(of the config, only {', '.join(sorted(RESUMABLE))} may change on --resume)")
    return stored, changed


def _start(model, optimizer, last: Path, state, changes, source, train_refs, config, env, check=False) -> Progress:
    r"""Restores a run to resume from ``state`` (``last``'s checkpoint; ``changes``: its stored config and the changes
    :func:`_refused_changes` allowed), or, with None, fits the standardisation and initialises a new one.
    ``check``: nothing is written after it, and its notes say so."""
    if state is not None:
        stored, changed = changes
        trained = state["progress"]["epoch"]
        patience = stored["train"]["patience"]
        stopped = bool(patience) and state["progress"]["bad_epochs"] >= patience
        if stopped:  # stopped early: nothing is left to train
            if "train.epochs" in changed:
                raise ConfigError(f"{last}: --train.epochs on --resume: the run stopped early at epoch {trained} (no "
                                  f"better validation NLL for {patience} epochs; best epoch "
                                  f"{state['progress']['best_epoch']}), so more epochs would train none; train afresh "
                                  f"in another --exp (with another train.patience) to go on")
            if env.is_main:
                again = "" if check else "; final.pt is written again from best.pt"
                print(f"train: the run stopped early at epoch {trained} (best epoch {state['progress']['best_epoch']}):"
                      f" nothing to train{again}", file=sys.stderr)
        if "train.epochs" in changed and config.train.epochs <= trained:
            raise ConfigError(f"{last}: --train.epochs {config.train.epochs} on --resume: the run has trained "
                              f"{trained} epoch(s) already; give more, or leave it as it was "
                              f"({stored['train']['epochs']})")
        if changed and env.is_main:
            cosine = config.train.lr_schedule == "cosine" and "train.epochs" in changed
            note = " (the cosine schedule follows the new count from here)" if cosine else ""
            print(f"train: resuming with {'; '.join(changed.values())}{note}", file=sys.stderr)
        model.load_state_dict(state["model"]["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        progress = Progress(**state["progress"])
        if not stopped and trained >= config.train.epochs and env.is_main:
            again = "" if check else "; final.pt is written again"
            print(f"train: the run has trained its {trained} epoch(s): nothing to train{again}", file=sys.stderr)
        goes_on = not stopped and trained < config.train.epochs
        _check_world(progress, env, last, note=goes_on)
        if goes_on and env.is_main:
            _note_format(state, last, check)
        return progress
    cfg = config.train
    if config.features.standardize:
        model.pipeline.fit(source.feats(r) for r in standardization_sample(train_refs, cfg.standardize_max_utts))
    init = FrameStream(source, train_refs, model.pipeline, cfg.batch_size, cfg.buffer_frames, cfg.seed)
    x, y = init_batch(init, model.prior.num_classes)
    model.initialize(x.to(env.device), y.to(env.device))  # a class-context flow takes its context from y
    return Progress(world=env.world)


def _note_format(state: dict, last: Path, check: bool) -> None:
    r"""Says where ``last``'s checkpoint was written by a flowaccent whose training differs from this one's
    (:data:`~flowaccent.train.checkpoint.TRAINING_FORMAT`): the resume is not then the uninterrupted run."""
    written = state.get("training_format")
    if written == TRAINING_FORMAT:
        return
    by = ("an older flowaccent (before checkpoints recorded their training's format)" if written is None else
          f"a flowaccent of training format {written} (this one's: {TRAINING_FORMAT})")
    goes = "would go" if check else "goes"
    print(f"train: note: {last} was written by {by}: the run {goes} on with this version's training, whose batches "
          f"and steps may differ, so it is not the run an uninterrupted one would have been (resume with the "
          f"version that began it for that, or train afresh)", file=sys.stderr)


def init_batch(stream: FrameStream, num_classes: int, most: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(frames (N, D), labels (N,))`` to initialise a model on: the first batch of ``stream``'s first epoch,
    joined by the next ones until every class has frames among them (at most ``most`` batches). The class means
    start from each class's own latents: a class absent from the first batch started at 0."""
    xs, ys = [], []
    with contextlib.closing(stream.epoch(0)) as batches:
        for x, y in itertools.islice(batches, most):
            xs.append(x)
            ys.append(y)
            if len(torch.unique(torch.cat(ys))) >= num_classes:
                break
    return torch.cat(xs), torch.cat(ys)


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


def _check_world(progress: Progress, env: distributed.DistEnv, last: Path, note: bool = True) -> None:
    r"""Refuses to resume in the middle of an epoch with another number of processes than wrote ``last``: each
    process replays its own share of the epoch's batches, and another split would skip or repeat frames. At an
    epoch's end the run may go on with another count (``note``: said, where it trains on: not the run one count
    would have made; a finished run said it resumed at the start of an epoch past its last)."""
    if progress.world == env.world:
        return
    was = f"{progress.world} process{'es' if progress.world > 1 else ''}"
    if progress.step_in_epoch:
        raise ConfigError(f"{last}: the run was trained with {was}, stopped within epoch {progress.epoch + 1}; "
                          f"resume it with {progress.world} (torchrun --nproc_per_node {progress.world})")
    if env.is_main and note:
        print(f"train: resuming a run of {was} with {env.world} at the start of epoch {progress.epoch + 1} (the "
              "batches' split differs from here)", file=sys.stderr)
    progress.world = env.world


class _Checks:
    r"""The steps' logged means, checked for a non-finite loss one step late.

    Reading a step's loss on the host right after its forward made the host wait for the GPU at
    every step (see :mod:`flowaccent.transfer`), so each step's means are read after the next step
    has been launched. A non-finite loss then stops training one step later than it happens, with
    the weights already updated by it; what keeps the last good checkpoint good is that every
    checkpoint is written only after :meth:`flush` (the trainer's loop calls it before each save).

    Arguments:
        sums: float64 ``(3,)``, the window's sums of loss, -LogP, -LogDet times the batch size; added to here.
        exp: the experiment directory (named in the error).
    """

    def __init__(self, sums: torch.Tensor, exp: Path):
        self.sums, self.exp = sums, exp
        self._pending: tuple[HostCopy, int, int, int, int] | None = None

    def add(self, stats: HostCopy, frames: int, progress: Progress) -> None:
        r"""Takes a launched step's means (``frames`` in its batch; ``progress`` as before the step), and
        checks the step before it."""
        self.flush()
        self._pending = (stats, frames, progress.global_step + 1, progress.epoch + 1, progress.step_in_epoch + 1)

    def flush(self) -> None:
        r"""Waits for the last step's means, checks them (TrainingError) and adds them to the sums."""
        if self._pending is None:
            return
        copy, frames, step, epoch, batch = self._pending
        stats = copy.get()["stats"]  # a Ctrl-C in this wait leaves the step pending: the flush before saving checks it
        self._pending = None
        if not math.isfinite(stats[0]):
            last = self.exp / "checkpoints" / "last.pt"
            kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written before it"
            raise TrainingError(
                f"non-finite loss ({stats[0].item()}) at step {step} (epoch {epoch}, batch {batch}); training "
                f"stopped, {kept}"
            )
        self.sums += stats * frames


def _stopped_by(error: BaseException) -> bool:
    r"""Whether ``error`` stops a run at a whole step: a signal (``KeyboardInterrupt``), or a collective whose peer
    process is gone; any other error (a bug, a non-finite loss) is one the step itself raised."""
    return isinstance(error, KeyboardInterrupt) or distributed.peer_gone(error) is not None


class _Runner:
    r"""Epochs, steps, validation, checkpoints and logs of one training run."""

    def __init__(self, model: FlowModel, optimizer, config: ExperimentConfig, exp: Path, env, quiet: bool):
        self.model, self.optimizer, self.config, self.exp, self.env = model, optimizer, config, exp, env
        self.cfg = config.train
        self.quiet = quiet or not env.is_main
        self.net = model
        if env.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.net = DistributedDataParallel(model)  # broadcasts rank 0's initialised weights
        #: the training forward: ``self.net``, or it compiled (train.compile; validation runs ``model`` eagerly)
        mode = None if self.cfg.compile_mode == "default" else self.cfg.compile_mode
        self.forward = compiled(self.net, env.device, "train", mode) if self.cfg.compile else self.net
        if self.cfg.compile and not self.quiet:
            print("train: train.compile: the first step of each batch shape compiles first", file=sys.stderr)
        self.tb = _tensorboard(exp) if env.is_main else None  # after trim_log: its records, again
        self.log_path = exp / "log" / "train.jsonl"
        self.log_file = open(self.log_path, "a") if env.is_main else None
        #: holds SIGINT/SIGTERM back in critical sections while :meth:`fit` runs (a step with its count, log record
        #: and checkpoint; a checkpoint's write; an epoch's end); before and after it, signals act at once
        self.held = HeldSignals(deliver_on=distributed.peer_gone)

    def fit(self, stream: FrameStream, valid_stream: FrameStream, progress: Progress) -> None:
        r"""Trains the remaining epochs on ``stream``'s batches and validates on ``valid_stream``'s
        utterances after each. One prefetching iterator runs over all the epochs
        (:meth:`FrameStream.epochs`): with a thread (``train.prefetch``) the next epoch's first
        batches are made while this one's validation and checkpoints run. So that the two read at
        the same time, ``valid_stream`` must read through its own :class:`FrameSource`."""
        stopped = bool(self.cfg.patience) and progress.bad_epochs >= self.cfg.patience  # early: resuming it is a no-op
        epochs = range(progress.epoch, progress.epoch if stopped else self.cfg.epochs)
        plan = [(epoch, self._steps_per_epoch(stream, epoch)) for epoch in epochs]
        depth = resolve_depth(self.cfg.prefetch, self.env.device, stream.burst)
        batches = pinned(stream.epochs(plan, progress.step_in_epoch), self.env.device)  # made in the thread, if any
        with prefetch(batches, depth) as batches, self.held:  # a Ctrl-C waits for a step's count, its log, its saves
            for _, steps in plan:
                seconds = self._train_epoch(batches, steps, progress)
                start = time.perf_counter()
                try:
                    valid = self._validate(valid_stream)
                except (KeyboardInterrupt, RuntimeError) as error:  # the epoch's steps are done: a resume validates
                    self._save_if_stopped(error, progress)  # it and goes on (a process gone in its collectives: rank 0
                    raise  # saved nothing, and the epoch was lost)
                seconds["valid_s"] = time.perf_counter() - start
                self._end_epoch(progress, valid, seconds)
                if self.cfg.patience and progress.bad_epochs >= self.cfg.patience:
                    self._log({"event": "early_stop", "epoch": progress.epoch, "best_epoch": progress.best_epoch})
                    break

    def _steps_per_epoch(self, stream: FrameStream, epoch: int) -> int:
        r"""Full batches only: the frames past the last (fewer than a batch, other frames each epoch) wait for
        the next epoch. A short last batch took a full-weight step on a few frames, and under BatchNorm a batch of
        one frame made the loss NaN (its variance over the batch) and stopped the run. One process with fewer
        frames than a batch takes them all in one step."""
        frames = stream.num_frames(epoch)
        steps = (
            distributed.all_min(frames // stream.batch_size, self.env)
            if self.env.distributed
            else max(frames // stream.batch_size, min(frames, 1))
        )
        if self.cfg.max_steps_per_epoch:
            steps = min(steps, self.cfg.max_steps_per_epoch)
        if steps < 1 and self.env.distributed:  # every rank is here: the minimum is global
            raise ConfigError(
                f"train.batch_size {self.cfg.batch_size} is {stream.batch_size} frames for each of the "
                f"{self.env.world} processes, more than the fewest training frames a process has in epoch "
                f"{epoch + 1} ({distributed.all_min(frames, self.env)}: each streams its own share of the "
                f"utterances); lower train.batch_size, or use fewer processes"
            )
        if steps < 1:
            raise ConfigError(f"train.batch_size {self.cfg.batch_size} is larger than the training frames ({frames})")
        return steps

    def _train_epoch(self, batches: Prefetched | Inline, steps: int, progress: Progress) -> dict[str, float]:
        r"""Steps through one epoch's batches of ``batches`` (up to the ``None`` that ends them), each step with its
        count, its log record and its checkpoint one critical section of :attr:`held`; returns its seconds:
        ``train_s`` in all, ``data_wait_s`` of them waiting for batches."""
        self.model.train()
        bar = tqdm(
            total=steps,
            initial=progress.step_in_epoch,
            unit="step",
            disable=self.quiet,
            desc=f"epoch {progress.epoch + 1}/{self.cfg.epochs}",
        )
        start, frames, timed, sums = time.perf_counter(), 0, 0, torch.zeros(3, dtype=torch.float64)
        if progress.window:  # resumed within the epoch: the window its checkpoint left open
            sums += torch.tensor(progress.window[:3], dtype=torch.float64)
            frames = int(progress.window[3])
        epoch_start = start
        epoch_waited = waited = batches.wait_seconds
        checks = _Checks(sums, self.exp)
        try:
            for x, y in iter(batches.__next__, None):
                # A Ctrl-C waits for the step's count (last.pt then matches the weights) and for the record and
                # checkpoint due at this step: delivered between the count and the record, it saved the step
                # in the open window and its record was never written (the log skipped it on resume).
                with self.held.critical():
                    x, y = to_device(x, self.env.device), to_device(y, self.env.device)
                    batch = len(x) * self.env.world  # every rank's batch is one size (full batches only)
                    checks.add(self._step(x, y, progress), batch, progress)
                    frames, timed = frames + batch, timed + batch
                    progress.step_in_epoch += 1
                    progress.global_step += 1
                    bar.update()
                    if progress.global_step % self.cfg.log_every_steps == 0:
                        checks.flush()
                        elapsed = time.perf_counter() - start
                        self._log_train(progress, sums / frames, timed / elapsed, batches.wait_seconds - waited)
                        bar.set_postfix(nll=f"{(sums[0] / frames).item():.2f}")
                        start, frames, timed, waited = time.perf_counter(), 0, 0, batches.wait_seconds
                        sums.zero_()
                    every = self.cfg.checkpoint_every_steps
                    if every and progress.global_step % every == 0:
                        checks.flush()  # only checked steps are saved
                        progress.window = [*sums.tolist(), frames]
                        self._save("last.pt", progress)
            checks.flush()
        except (KeyboardInterrupt, RuntimeError) as error:  # stopped, or another process of the run is gone
            if _stopped_by(error):  # any other error's step did not count
                checks.flush()
                progress.window = [*sums.tolist(), frames]
                self._save_if_stopped(error, progress)
            raise
        finally:
            bar.close()
        progress.window = []  # the epoch's last steps short of a window are not logged
        return {"train_s": time.perf_counter() - epoch_start, "data_wait_s": batches.wait_seconds - epoch_waited}

    def _step(self, x: torch.Tensor, y: torch.Tensor, progress: Progress) -> HostCopy:
        r"""One optimiser step on the batch ``x (B, D)``, ``y (B,)``; returns its loss, -LogP and -LogDet
        means on their way to the host (read one step later: :class:`_Checks`), over every rank's batch: the
        records said rank 0's alone, and its frames per second, half the run's with 2 processes."""
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(progress)
        threshold = self.cfg.gradient_filter_threshold if self.cfg.gradient_filter else None
        with compute_precision(self.env.device, self.cfg.precision):  # the class as context: from y, in the flow
            out = self.forward(x, y, None, threshold)
        loss = out.nll.mean()
        stats = torch.stack([loss.detach(), -out.log_p.detach().mean(), -out.log_det.detach().mean()]).double()
        stats = distributed.mean_over_ranks(stats, self.env)
        stats = HostCopy({"stats": stats})  # no wait here: the host goes on launching the backward
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        return stats

    def _lr(self, progress: Progress) -> float:
        cfg = self.cfg
        warm = min(1.0, (progress.global_step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        if cfg.lr_schedule == "cosine":
            return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * progress.epoch / cfg.epochs))
        if cfg.lr_schedule == "exponential":
            return cfg.lr * warm * cfg.lr_decay**progress.epoch
        return cfg.lr * warm

    def _validate(self, stream: FrameStream) -> dict[str, float] | None:
        r"""The held-out NLL of rank 0's model (the one it saves), the same on every rank: each rank validated all of
        the set with its own BatchNorm running statistics (DDP hands out rank 0's before each forward, and each
        rank then updates its own from its shard), so the ranks' NLLs differed, and with them could their best
        epoch and early stop (one rank then waited for the other's gradients until the collectives' timeout)."""
        self.model.eval()
        if self.env.distributed:
            distributed.broadcast_buffers(self.model)
        return held_out_nll(self.model, stream, self.cfg.batch_size, self.env.device, self.cfg.precision, self.env)

    def _end_epoch(self, progress: Progress, valid: dict | None, seconds: dict[str, float]) -> None:
        r"""Counts the epoch, keeps the best model, writes the checkpoints and logs the epoch with where
        its wall time went (``seconds``: ``train_s``, ``data_wait_s``, ``valid_s``; ``save_s`` added here); a
        signal waits for all of it (:attr:`held`)."""
        with self.held.critical():
            self._end_epoch_held(progress, valid, seconds)

    def _end_epoch_held(self, progress: Progress, valid: dict | None, seconds: dict[str, float]) -> None:
        start = time.perf_counter()
        progress.epoch += 1
        progress.step_in_epoch = 0
        record = {"epoch": progress.epoch, "step": progress.global_step, "valid": valid}
        improved = valid is not None and valid["nll"] < progress.best_valid
        if improved:
            progress.best_valid, progress.best_epoch, progress.bad_epochs = valid["nll"], progress.epoch, 0
        elif valid is not None:
            progress.bad_epochs += 1
        progress.history.append(record)
        if improved:  # best first: killed in between, last.pt is the older one and a resume redoes the epoch
            self._save("best.pt", progress)
            if self.env.is_main:  # the same checkpoint: written once, named twice
                atomic_link(self.exp / "checkpoints" / "best.pt", self.exp / "checkpoints" / "last.pt")
        else:
            self._save("last.pt", progress)
        seconds = {**seconds, "save_s": time.perf_counter() - start}
        self._log({"event": "epoch", **record, **{k: round(v, 4) for k, v in seconds.items()}})
        if not self.quiet and self.env.is_main:  # the bar goes with its epoch; this line stays above the next
            said = f"valid NLL {valid['nll']:.3f}" if valid is not None else "no validation (no utterances held out)"
            best = f" (best {progress.best_valid:.3f}, epoch {progress.best_epoch})" if valid is not None else ""
            tqdm.write(f"train: epoch {progress.epoch}/{self.cfg.epochs}: {said}{best}, "
                       f"{sum(v for k, v in seconds.items() if k != 'data_wait_s'):.0f} s", file=sys.stderr)

    def _log_train(self, progress: Progress, means: torch.Tensor, fps: float, data_wait: float) -> None:
        r"""Logs a window's means; ``data_wait``: seconds its steps waited for batches (reading,
        features and shuffling, as far as no prefetch thread hid them)."""
        nll, neg_log_p, neg_log_det = means.tolist()
        record = {
            "event": "train",
            "epoch": progress.epoch + 1,
            "step": progress.global_step,
            "nll": nll,
            "log_p": -neg_log_p,
            "log_det": -neg_log_det,
            "lr": self.optimizer.param_groups[0]["lr"],  # the last step's (_lr(progress) is the next one's)
            "frames_per_s": fps,
            "data_wait_s": round(data_wait, 4),
        }
        self._log(record)

    def _log(self, record: dict) -> None:
        r"""One record to ``log/train.jsonl`` and its scalars to TensorBoard."""
        record = {**record, "time": round(time.time(), 3)}  # wall clock (Unix seconds), for curves against time
        if self.log_file is not None:
            try:
                self.log_file.write(json.dumps(record) + "\n")
                self.log_file.flush()
            except OSError as error:  # a full disk: the log's name with it (resuming trims a line cut short)
                raise OSError(error.errno, error.strerror, str(self.log_path)) from error
        if self.tb is not None:
            _scalars(self.tb, record)

    def _save(self, name: str, progress: Progress) -> None:
        r"""Writes a checkpoint (rank 0); a signal waits for it: a Ctrl-C inside ``torch.save`` ended the run with
        'RuntimeError: [enforce fail at inline_container.cc] unexpected pos' rather than as interrupted."""
        if self.env.is_main:
            with self.held.critical():
                save_checkpoint(
                    self.exp / "checkpoints" / name, self.model, self.optimizer, progress, self.config.to_dict()
                )

    def _save_if_stopped(self, error: BaseException, progress: Progress) -> None:
        r"""Writes ``last.pt`` at ``progress`` where ``error`` stopped the run there (:func:`_stopped_by`): a signal,
        or another process of the run gone. Of a signal it says how to go on (the command then says 'interrupted',
        which did not say the run was kept)."""
        if not _stopped_by(error):
            return
        self._save("last.pt", progress)
        if isinstance(error, KeyboardInterrupt) and self.env.is_main:
            print(f"train: stopped in epoch {progress.epoch + 1} at step {progress.global_step}: "
                  f"{self.exp / 'checkpoints' / 'last.pt'} written; 'flowaccent train --exp {self.exp} --resume' "
                  f"goes on from it", file=sys.stderr)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.log_file is not None:
            try:
                self.log_file.close()
            except OSError as error:  # what a full disk left unwritten
                raise OSError(error.errno, error.strerror, str(self.log_path)) from error


@torch.no_grad()
def held_out_nll(
    model: FlowModel,
    stream: FrameStream,
    batch_frames: int,
    device: torch.device,
    precision: str,
    env: distributed.DistEnv | None = None,
) -> dict[str, float] | None:
    r"""NLL, LogP and LogDet per frame of ``stream``'s utterances (the held-out ones) under ``model``
    (in eval mode), and their frame count; None without any utterances. The utterances, whole, are
    joined into batches of about ``batch_frames`` frames (:meth:`FrameStream.joined`: one forward
    per batch, not per utterance), the sums taken in float64. Under several processes (``env``), each
    takes its share of the utterances and the sums are added over all: every process returns the same."""
    if not stream.refs:
        return None
    share = env is not None and env.distributed
    sums = torch.zeros(4, dtype=torch.float64)  # -log p(x), -LogP, -LogDet, frames
    with packed_inference(model), compute_precision(device, precision):  # no optimiser step inside
        for x, y in stream.joined(batch_frames, share):
            x, y = x.to(device), y.to(device)
            out = model(x, y)
            sums[:3] += torch.stack([out.nll, -out.log_p, -out.log_det]).double().sum(1).cpu()
            sums[3] += len(x)
    if share:
        sums = distributed.sum_over_ranks(sums, env)
    count = int(sums[3])
    nll, neg_log_p, neg_log_det = (sums[:3] / count).tolist()
    return {"nll": nll, "log_p": -neg_log_p, "log_det": -neg_log_det, "frames": count}


def parameter_digest(model: torch.nn.Module) -> str:
    r"""SHA-1 of every parameter and buffer, to check that processes hold the same model."""
    h = hashlib.sha1()
    for name, value in model.state_dict().items():
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _tensorboard(exp: Path):
    r"""A TensorBoard writer into ``exp/tensorboard``, its event files written afresh from ``log/train.jsonl``
    (as :func:`trim_log` left it): a resumed run's scalars past its checkpoint stood there twice (the writer
    appends a file per run and trims nothing), and what a killed run's writer had not flushed was lost."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: the jsonl log has the same scalars
        return None
    folder, log = exp / "tensorboard", exp / "log" / "train.jsonl"
    for old in folder.glob("events.out.tfevents.*"):
        old.unlink()
    writer = SummaryWriter(str(folder))
    for line in log.read_text(encoding="utf-8").splitlines() if log.exists() else []:
        _scalars(writer, json.loads(line))
    writer.flush()
    return writer


def _scalars(writer, record: dict) -> None:
    r"""A ``train.jsonl`` record's scalars in TensorBoard: a train window's as ``train/LogLL`` (NLL),
    ``train/LogP``, ``train/LogDet``; an epoch's validation as ``valid/...``; at the record's step and time."""
    where = record.get("event")
    values = {"train": record, "epoch": record.get("valid")}.get(where)
    if not isinstance(values, dict):
        return
    where = "train" if where == "train" else "valid"
    for name, key in (("LogLL", "nll"), ("LogP", "log_p"), ("LogDet", "log_det")):
        if key in values:  # an older run's records may lack one
            writer.add_scalar(f"{where}/{name}", values[key], record["step"], walltime=record.get("time"))
