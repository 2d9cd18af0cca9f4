r"""``flowaccent blurmask``: fit and evaluate blur masks of a few utterances of a trained flow.

For each data dir, ``utts`` utterances spread evenly over it are read, a mask is fitted for the
chosen target, and deletion curves are measured for every baseline. Per utterance,
``OUT/<set>/<utt>.npz`` and a figure ``OUT/<set>/figures/<utt>.png|pdf``; over utterances,
``utt_table.tsv``, ``deletion_curves.png|pdf``, ``summary.md``, ``config.yaml`` and, last,
``summary.json``. Every file is written under a temporary name and renamed.

A run writes into ``OUT/.partial/`` and moves its files into place only once all are written: a failed or
stopped rerun leaves the earlier run's results as they were (it had removed its summaries and some of its
utterances' files, and left the utterances it had done beside the earlier run's). ``.partial/`` stays after a
failure or a Ctrl-C, and a rerun takes over each utterance done there with the same model, options and features
(a key of them stored in its ``.npz``), so a stopped run resumes.

The parts have their own files: which utterances (:mod:`~flowaccent.blurmask.choose`), one utterance's mask, files
and key (:mod:`~flowaccent.blurmask.utterance`), the warnings of one (:mod:`~flowaccent.blurmask.warn`), and what is
written over them (:mod:`~flowaccent.blurmask.summary`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from flowaccent.blurmask.choose import check_file_names, choose_utterances
from flowaccent.blurmask.config import BlurMaskConfig, DeletionConfig, RunConfig
from flowaccent.blurmask.summary import write_summary
from flowaccent.blurmask.targets import check_target
from flowaccent.blurmask.utterance import (
    UttResult,
    done_before,
    explain_utterance,
    remove_stale_files,
    utt_file_name,
    utterance_key,
)
from flowaccent.blurmask.warn import fit_warnings, short_warning, undefined_warnings
from flowaccent.data.atomic import file_digest
from flowaccent.data.kaldi_io import RandomAccessReader
from flowaccent.data.lock import output_lock
from flowaccent.data.specs import check_set_folders, load_named_dirs, output_dir, warn_other_sets
from flowaccent.data.stream import check_dims, load_cmvn_stats
from flowaccent.errors import ConfigError, FeatureError, FlowAccentError
from flowaccent.features.fbank_record import check_sets
from flowaccent.progress import progress_bar
from flowaccent.train.checkpoint import load_experiment_model

#: What blurmask writes beside the sets' folders (no set may take these names), ``summary.json`` last.
OUTPUT_FILES = ("config.yaml", "summary.md", "utt_table.tsv", "deletion_curves.pdf", "deletion_curves.png",
                "summary.json")
#: Where a run writes until it has written everything (kept after a failure: a rerun resumes from it).
PARTIAL = ".partial"
#: Seconds at least between two redraws of the bar for the work on an utterance (its fit's step, ...).
PHASE_INTERVAL = 0.5


def run_blurmask(
    exp_dir: str | Path,
    data_specs: list[str],
    out_dir: str | Path,
    fit: BlurMaskConfig = BlurMaskConfig(),
    deletion: DeletionConfig = DeletionConfig(),
    run: RunConfig = RunConfig(),
    checkpoint: str | Path | None = None,
    quiet: bool = False,
    command: str = "",
) -> dict[str, Any]:
    r"""Explains ``run.utts`` utterances of each data dir (``path`` or ``name=path``) with
    ``EXP_DIR/final.pt`` (or ``checkpoint``); writes ``out_dir`` (locked meanwhile) and returns the summary."""
    out = output_dir(out_dir, "blurmask", OUTPUT_FILES[:-1])
    with output_lock(out, "blurmask"):
        return _run_blurmask(Path(exp_dir), data_specs, out, fit, deletion, run, checkpoint, quiet, command)


def _run_blurmask(exp, data_specs, out, fit, deletion, run, checkpoint, quiet, command) -> dict[str, Any]:
    model = load_experiment_model(exp, checkpoint, "blurmask")
    check_filterbank(model.pipeline.input_dim)
    check_target(model, run.target, run.target_class)  # a bad target stops here, before any work
    need_cmvn = model.pipeline.config.cmvn == "spk"
    need = ("feats.scp",) + (("cmvn.scp",) if need_cmvn else ())
    sets = load_named_dirs(data_specs, need, "blurmask", (*OUTPUT_FILES, PARTIAL))
    check_sets(exp, sets, "blurmask")
    check_dims(sets, model.pipeline.input_dim, "blurmask", need_cmvn, model.pipeline.output_dim)
    check_set_folders(out, sets, "blurmask")
    warn_other_sets(out, sets, "blurmask")
    chosen = choose_utterances(sets, run)
    check_file_names(chosen)
    stage = out / PARTIAL
    for name in OUTPUT_FILES:  # a stopped run's summaries: this run writes its own
        (stage / name).unlink(missing_ok=True)
    digest = file_digest(Path(checkpoint) if checkpoint else exp / "final.pt")
    results = _explain_sets(model, sets, chosen, need_cmvn, stage, fit, deletion, run, quiet, digest)
    report = write_summary(stage, exp, checkpoint, digest, results, list(sets), fit, deletion, run, command)
    _move_into_place(stage, out, chosen)
    return report


def check_filterbank(input_dim: int) -> None:
    r"""Refuses a model whose stored features have more dims than a filterbank has bins (spliced or given deltas
    already: the blur ran along 440 'bins', mixing one frame's last bin into the next's first, without a word). A
    model of MFCCs is not told from one of a filterbank; its masks' change of the output is warned of (3e7% of its
    variance in a helper's run)."""
    from flowaccent.train.classes import MAX_RAW_DIM

    if input_dim > MAX_RAW_DIM:
        raise ConfigError(f"blurmask: the model's stored features are {input_dim}-d, more than a log filterbank's "
                          f"bins (at most {MAX_RAW_DIM}): spliced or given deltas already? A blur mask blurs the "
                          f"filterbank along its bins; train the model on the filterbank itself (its features.splice "
                          f"and features.deltas add the context)")


def _move_into_place(stage: Path, out: Path, chosen: dict[str, list[str]]) -> None:
    r"""Moves a finished run's files from ``stage`` (``OUT/.partial``) into ``out``: ``summary.json`` goes first
    (the folder claims no complete results while files move), the sets' files, then the summaries, ``summary.json``
    last; an earlier run's files of utterances this run did not explain are removed, other files in the sets'
    folders (the user's) are left."""
    (out / "summary.json").unlink(missing_ok=True)
    for name, utts in chosen.items():
        files = [f"{utt_file_name(u)}.npz" for u in utts] + [f"figures/{utt_file_name(u)}.{s}" for u in utts
                                                           for s in ("png", "pdf")]
        (out / name / "figures").mkdir(parents=True, exist_ok=True)
        for file in files:
            os.replace(stage / name / file, out / name / file)
        remove_stale_files(out / name, utts)
    for name in OUTPUT_FILES:
        os.replace(stage / name, out / name)
    shutil.rmtree(stage)


def _explain_sets(model, sets, chosen, need_cmvn, out, fit, deletion, run, quiet, digest="") -> list[UttResult]:
    r"""Explains the ``chosen`` utterances of each of ``sets``, writing their files into ``out/<set>/``; one done
    there already with the same key (:func:`utterance_key`, the model's file ``digest`` among it) is taken as it
    is. The folders' other utterances' files are removed first. A Ctrl-C says what was kept, and that the same
    command goes on from it (it said 'interrupted' alone)."""
    for name, utts in chosen.items():
        remove_stale_files(out / name, utts, quiet=True)
    taken, total = 0, sum(map(len, chosen.values()))
    results: list[UttResult] = []
    with _said_if_stopped(results, total, out), progress_bar(total=total, unit="utt", desc="blurmask",
                                                            disable=quiet) as bar:
        for name, data in sets.items():
            cmvn = load_cmvn_stats(data) if need_cmvn else {}
            with RandomAccessReader(data.path / "feats.scp", model.pipeline.input_dim) as reader:
                for utt in chosen[name]:
                    feats = reader[utt]
                    stats = cmvn.get(data.utt2spk[utt]) if need_cmvn else None
                    if stats is not None and stats.shape[1] != model.pipeline.input_dim + 1:
                        raise FeatureError(
                            f"{data.path / 'cmvn.scp'}: speaker '{data.utt2spk[utt]}': stats of dim "
                            f"{stats.shape[1] - 1}, the model expects {model.pipeline.input_dim}"
                        )
                    for warning in short_warning(model, name, utt, len(feats)):
                        tqdm.write(warning, file=sys.stderr)
                    key = utterance_key(digest, fit, deletion, run, feats, stats)
                    if (done := done_before(out / name, utt, key, deletion)) is not None:
                        results.append(done)
                        taken += 1
                    else:
                        try:
                            results.append(explain_utterance(model, name, utt, feats, stats, out, fit, deletion, run,
                                                             key, None if quiet else _phase_shown(bar, utt)))
                        except FlowAccentError as error:  # e.g. a NaN output of features far out of range
                            where = f"set {name} ({data.path / 'feats.scp'}): utterance '{utt}'"
                            raise type(error)(f"{where}: {error}") from None
                    # also of one taken over: the stopped run's warnings were said once, before the Ctrl-C
                    for warning in undefined_warnings(results[-1]) + fit_warnings(results[-1], fit):
                        tqdm.write(warning, file=sys.stderr)
                    bar.set_postfix_str("", refresh=False)
                    bar.update()
    if taken:
        print(f"blurmask: {taken} utterance(s) taken as a stopped run with the same model, options and features "
              f"had done them ({out})", file=sys.stderr)
    return results


@contextlib.contextmanager
def _said_if_stopped(results: list[UttResult], total: int, out: Path) -> Iterator[None]:
    r"""On a Ctrl-C, says how many of ``total`` utterances were done (``results``) and kept in ``out``, and that the
    same command goes on from them (it said 'interrupted' alone); outside the bar's block, so after its last line."""
    try:
        yield
    except KeyboardInterrupt:
        kept = (f"; their results are kept in {out}: the same command goes on from them" if results else
                "")  # none: the folder was removed, and the line named one not there
        print(f"blurmask: stopped after {len(results)} of {total} utterance(s){kept}", file=sys.stderr)
        raise


def _phase_shown(bar: tqdm, utt: str) -> Callable[[str], None]:
    r"""Shows where the work on ``utt`` is beside ``bar`` (``utt: fit step 12/300``): the bar counts utterances, and
    stood still for minutes on a long recording. A new phase at once, its counts (the fit's steps) at most every
    :data:`PHASE_INTERVAL` seconds; into a file or a pipe, no redraw of its own (each phase of each utterance was a
    line of the log)."""
    shown, label = -float("inf"), None

    def show(phase: str) -> None:
        nonlocal shown, label
        now, new = time.monotonic(), phase.rstrip("0123456789/")
        terminal = bar.mininterval <= PHASE_INTERVAL  # else a log's (flowaccent.progress): each redraw a line
        if (new != label and terminal) or now - shown >= max(PHASE_INTERVAL, bar.mininterval):
            shown, label = now, new
            bar.set_postfix_str(f"{utt}: {phase}", refresh=terminal)  # into a log: drawn with the bar's next line

    return show


