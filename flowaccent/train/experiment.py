r"""The experiment dir of a run (``--exp``): what it keeps of the run's config, classes, data and log, and what a
``--resume`` must match there."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from flowaccent.data.atomic import atomic_write_json, atomic_write_text
from flowaccent.data.fingerprint import changed_parts
from flowaccent.data.specs import parse_data_specs
from flowaccent.errors import ConfigError
from flowaccent.features.fbank_record import RECORD
from flowaccent.train import distributed
from flowaccent.train.checkpoint import TRAINING_FORMAT, Progress, load_checkpoint, resume_command
from flowaccent.train.config import RESUMABLE, ExperimentConfig, config_changes

#: The digests of the training dirs' tables and archives when the run began (:mod:`flowaccent.data.fingerprint`).
DIGESTS = "data_digest.txt"


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


def check_own_config(exp: Path, config: ExperimentConfig, config_file: str | Path | None) -> None:
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


def keep_fbank_record(exp: Path, record: dict | None) -> None:
    r"""``exp/fbank.json``: the fbank options the training dirs share (``record``,
    :func:`~flowaccent.features.fbank_record.training_record`), so scoring can refuse features computed otherwise;
    none where the dirs have no record."""
    if record is None:
        (exp / RECORD).unlink(missing_ok=True)
    else:
        atomic_write_json(exp / RECORD, record)


def check_same_data(exp: Path, classes_text: str, data_text: str, digest_text: str) -> None:
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


def refused_changes(state: dict, config_dict: dict, last: Path, config_file: str | Path | None = None
                    ) -> tuple[dict, dict[str, str]]:
    r"""``(stored config, its changes)`` of the checkpoint ``state`` of ``last`` against ``config_dict`` (read
    from ``config_file``, if any, and the options); a :class:`ConfigError` naming the changes ``--resume`` does not
    allow."""
    stored = ExperimentConfig.from_dict(state["config"], str(last)).to_dict()  # options added since: defaults
    changed = config_changes(stored, config_dict)
    # 'given' where the value was one of an edited EXP/config.yaml said nothing of where it came from
    source = "" if config_file is None else f"read from {config_file} and the command's options; "
    if refused := [text for key, text in changed.items() if key not in RESUMABLE]:
        raise ConfigError(f"{last}: the config differs from the run being resumed: {'; '.join(refused)} "
                          f"({source}of the config, only {', '.join(sorted(RESUMABLE))} may change on --resume; to "
                          f"train with it, train afresh in another --exp, or remove {last.parent.parent} first)")
    return stored, changed


def note_format(state: dict, last: Path, check: bool) -> None:
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


def check_world(progress: Progress, env: distributed.DistEnv, last: Path, note: bool = True) -> None:
    r"""Refuses to resume in the middle of an epoch with another number of processes than wrote ``last``: each
    process replays its own share of the epoch's batches, and another split would skip or repeat frames. At an
    epoch's end the run may go on with another count (``note``: said, where it trains on: not the run one count
    would have made; a finished run said it resumed at the start of an epoch past its last)."""
    if progress.world == env.world:
        return
    was = f"{progress.world} process{'es' if progress.world > 1 else ''}"
    if progress.step_in_epoch:
        raise ConfigError(f"{last}: the run was trained with {was}, stopped within epoch {progress.epoch + 1}; "
                          f"resume it with {progress.world}: {resume_command(last.parent.parent, progress.world)}")
    if env.is_main and note:
        print(f"train: resuming a run of {was} with {env.world} at the start of epoch {progress.epoch + 1} (the "
              "batches' split differs from here)", file=sys.stderr)
    progress.world = env.world


def earlier_run(
    exp: Path, last: Path, resume: bool, config: ExperimentConfig, config_file, texts: tuple[str, str, str]
):
    r"""``(state, changes)`` of the run in ``exp`` to resume (its last checkpoint ``last``, and what
    :func:`refused_changes` allowed to change), ``(None, None)`` for a new run; ``texts``: the run's
    ``classes.txt``, ``data.txt`` and data digests, checked against the earlier run's. Refuses a finished run whose
    ``last.pt`` is gone (a new run would train over it; ``--resume`` goes to :func:`check_finished`), a run there
    without ``--resume``, and (new) a ``config.yaml`` there that no run wrote."""
    if not last.exists() and (exp / "final.pt").exists():  # checkpoints/ removed to save space: a new run, or
        # --resume's fresh start, trained over the finished model, its config.yaml and its log
        raise ConfigError(f"{exp}: holds a finished run (final.pt) whose checkpoints/last.pt is gone, so it cannot "
                          f"be resumed, and a new run would overwrite it; train in another --exp (or remove "
                          f"{exp / 'final.pt'} to train here afresh)")
    if resume and last.exists():
        try:
            state = load_checkpoint(last)
        except ConfigError as error:  # damaged: best.pt may not be
            best = last.with_name("best.pt")
            other = (f"; {best}, the best epoch's, may be whole: copy it to {last} to go on from that epoch" if
                     best.exists() and not best.samefile(last) else "")
            raise ConfigError(f"{error}{other}; or train afresh in another --exp") from None
        # first: --features.cmvn utt changed the digest too
        changes = refused_changes(state, config.to_dict(), last, config_file)
        check_same_data(exp, *texts)
        return state, changes
    if last.exists():
        raise ConfigError(f"{exp}: holds a training run already; pass --resume or use another dir")
    check_own_config(exp, config, config_file)
    return None, None


def check_finished(exp: Path, config: ExperimentConfig, config_file, texts: tuple[str, str, str]) -> Progress:
    r"""``--resume`` (and ``--resume --check``) of the finished run in ``exp`` whose ``checkpoints/last.pt`` is gone
    (removed to save space), which trains nothing: the progress its ``final.pt`` keeps, where ``config`` and the
    data (``texts``, as :func:`earlier_run`'s) are the run's; else a :class:`ConfigError` naming what differs.
    Nothing can be trained on from ``final.pt``, so only the settings that do not shape the model may differ. A
    recipe rerun with other --train-opts counted such a run as done, and scored the old model under the new
    options."""
    final = exp / "final.pt"
    state = load_checkpoint(final)
    stored = ExperimentConfig.from_dict(state.get("config"), str(final)).to_dict()
    unshaped = RESUMABLE - {"train.epochs"}  # where and how it would train on: nothing is trained
    if refused := [text for key, text in config_changes(stored, config.to_dict()).items() if key not in unshaped]:
        source = "" if config_file is None else f"read from {config_file} and the command's options; "
        raise ConfigError(f"{final}: the config differs from the finished run's: {'; '.join(refused)} ({source}its "
                          f"checkpoints/last.pt is gone, so it cannot be trained on; to train with it, train afresh "
                          f"in another --exp, or remove {exp} first)")
    check_same_data(exp, *texts)
    return Progress(**state["progress"])


def write_experiment(exp: Path, progress: Progress, config: ExperimentConfig, texts: tuple[str, str, str],
                      record: dict | None) -> None:
    r"""What ``exp`` keeps of the run before it trains: its log cut to ``progress`` (a resumed run's), its
    ``config.yaml``, ``classes.txt``, ``data.txt`` and data digests (``texts``), and the fbank ``record`` its data
    dirs share (:func:`keep_fbank_record`)."""
    (exp / "log").mkdir(parents=True, exist_ok=True)
    trim_log(exp / "log" / "train.jsonl", progress, config.train.patience)
    atomic_write_text(exp / "config.yaml", config.to_yaml())
    for name, text in zip(("classes.txt", "data.txt", DIGESTS), texts):
        atomic_write_text(exp / name, text)
    keep_fbank_record(exp, record)
