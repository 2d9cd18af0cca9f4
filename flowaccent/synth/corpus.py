r"""The demo corpus (``flowaccent synth``): six Kaldi data dirs of synthetic native and accented English.

``OUT_DIR/{train_native, dev_native, test_native, train_zh, test_zh, test_ja}``
each hold ``wav.scp, text, utt2spk, spk2utt, utt2accent, utt2score`` (and
``utt2phones``, the espeak phonemes spoken, ``phones.ctm``, when espeak spoke
each, a Kaldi CTM, and ``canonical.ctm``, the native reading's phonemes timed by
them, as a forced alignment with a native lexicon would label the speech:
:mod:`flowaccent.synth.canonical`); the WAV files (16-bit PCM mono, 22050 Hz) lie under
``OUT_DIR/wav/<speaker>/``, ``OUT_DIR/synth_config.yaml`` holds the resolved
configuration and ``OUT_DIR/speakers`` every voice.

Atomic: everything is written into a hidden temporary folder next to
``OUT_DIR`` and renamed to ``OUT_DIR`` at the end; an interrupted or failed run
removes it, so nothing that looks complete is left behind. Deterministic: the
same configuration gives the same bytes, whatever ``nj``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import numbers
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

from flowaccent.data.ctm import write_ctm
from flowaccent.data.datadir import write_spk2utt, write_table
from flowaccent.data.lock import locked_file
from flowaccent.errors import ConfigError, FlowAccentError
from flowaccent.progress import progress_bar
from flowaccent.synth.accents import score_of
from flowaccent.synth.espeak import require_espeak
from flowaccent.synth.plan import SETS, Job, Plan, SynthConfig, plan_corpus, speaker_shortfall
from flowaccent.synth.render import Rendered, render_job
from flowaccent.synth.text import transcript
from flowaccent.workers import imap_fresh_processes


class SynthError(FlowAccentError):
    r"""The corpus cannot be written where asked (``OUT_DIR`` exists, bad path)."""


@dataclasses.dataclass(frozen=True)
class CorpusSummary:
    r"""What :func:`make_corpus` made.

    Attributes:
        out_dir: the corpus folder.
        num_utts: utterances per data dir.
        audio_seconds: total duration of the audio.
        seconds: wall-clock time taken.
    """

    out_dir: Path
    num_utts: dict[str, int]
    audio_seconds: float
    seconds: float


def make_corpus(
    out_dir: str | Path, config: SynthConfig = SynthConfig(), nj: int = 1, quiet: bool = False
) -> CorpusSummary:
    r"""Synthesises the demo corpus into ``out_dir``.

    Arguments:
        out_dir: the corpus folder; must not exist (or be empty).
        config: sizes and seed.
        nj: parallel worker processes (espeak-ng is process-global: never threads).
        quiet: no progress bar.

    Returns:
        a :class:`CorpusSummary`.

    Example:
        >>> make_corpus("data/demo", SynthConfig(num_sentences=40), quiet=True)  # doctest: +SKIP
    """
    SynthConfig.expect(config, "make_corpus")  # a dict: 'dict' object has no attribute 'seed'
    if not isinstance(nj, numbers.Integral) or isinstance(nj, bool) or nj < 1:  # '2': a TypeError; 2.5 was taken
        raise ConfigError(f"synth: nj (--nj) must be a whole number >= 1, got {nj!r}")
    start = time.perf_counter()
    out = Path(out_dir).resolve()
    _check_target(out)
    require_espeak()
    _check_space(out, config.num_utts)  # before the plan: 1e8 sentences drew for minutes, then failed hours in
    # an empty OUT_DIR is filled where it is (its mode, group and mount kept; a shell in it sees the corpus): it
    # was replaced by a new folder, and a mount point failed at the end ('Device or resource busy')
    home = out if out.is_dir() else out.parent
    home.mkdir(parents=True, exist_ok=True)
    with _only_run(out, home):
        return _make_corpus(out, home, config, nj, quiet, start)


@contextlib.contextmanager
def _only_run(out: Path, home: Path) -> Iterator[None]:
    r"""Holds ``home/.OUT.synth.lock`` while the block runs, and removes the temporary folders (``.OUT.tmp-*``)
    a killed run left in ``home``: a second run into ``out`` called the first's live folder "a killed run's", said to
    remove it, and synthesised the whole corpus again before it failed; a SIGKILL's folder stayed for ever."""
    lock = home / f".{out.name}.synth.lock"
    fd, held = locked_file(lock, f"synth: {out} is being written by another flowaccent synth now; wait for it", out)
    try:
        for old in home.glob(f".{out.name}.tmp-*"):  # none is a live run's: that run would hold the lock
            if held:
                shutil.rmtree(old, ignore_errors=True)
                print(f"synth: note: removed {old}, a killed run's temporary folder", file=sys.stderr)
            else:  # no lock on this file system: it may be a live run's
                print(f"synth: note: {old} is another run's temporary folder, or a killed one's", file=sys.stderr)
        yield
    finally:
        lock.unlink(missing_ok=True)  # still held: a run that opened it before locks a removed file, then finds OUT
        os.close(fd)


def _make_corpus(out: Path, home: Path, config: SynthConfig, nj: int, quiet: bool, start: float) -> CorpusSummary:
    r""":func:`make_corpus` once its target is checked and held."""
    _check_target(out)  # another run may have made it meanwhile
    plan = plan_corpus(config)
    for line in speaker_shortfall(plan, config):
        print(f"synth: note: {line}", file=sys.stderr)
    fill = home == out
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=home))
    mask = os.umask(0)
    os.umask(mask)
    # mkdtemp's 0700 would keep a shared corpus from the other users, as mkdir does not; a group-shared (setgid)
    # folder's bit, which the new folder took from it, is kept: its sets and files had the creator's group
    tmp.chmod(0o777 & ~mask | tmp.stat().st_mode & stat.S_ISGID)
    try:
        rendered = _render_all(plan, tmp / "wav", config.noise_std, nj, quiet)
        num_utts = _write_data_dirs(plan, rendered, tmp, out)
        _write_manifest(plan, config, tmp)
        _check_target(out, ours=tmp)
        if fill:
            _move_into(tmp, out)
        else:
            os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    audio = sum(r.num_samples for r in rendered.values()) / _SAMPLE_RATE
    return CorpusSummary(out, num_utts, audio, time.perf_counter() - start)


#: espeak-ng's output rate (checked against the library when rendering).
_SAMPLE_RATE = 22050


#: Bytes a corpus takes per utterance, with room: the default corpus's 1760 took 263.2 MB (docs/demo-corpus.md),
#: 149.5 kB each, of which its WAV files 146.5 kB (22.05 kHz 16-bit mono; the quick demo's 53: 142.0 kB, 103.5 to
#: 200.3), and 151.7 kB each in 4 KiB blocks on ext4, what the free space is counted in. It was 142,000, the quick
#: demo's WAV alone: a disk that passed the check could still fill up.
WAV_BYTES_PER_UTT = 160_000


def _check_space(out: Path, num_utts: int) -> None:
    r"""A :class:`SynthError` where the file system ``out`` goes on has less free space than ``num_utts`` utterances'
    WAV files take (:data:`WAV_BYTES_PER_UTT` each)."""
    where = next(p for p in (out, *out.parents) if p.exists())
    need, free = num_utts * WAV_BYTES_PER_UTT, shutil.disk_usage(where).free
    if need > free:
        raise SynthError(f"{out}: {num_utts:,} utterances (--num-sentences and the fractions) take about "
                         f"{_size(need)} (WAV and tables, {WAV_BYTES_PER_UTT // 1000} kB each), and {where} has "
                         f"{_size(free)} free; give fewer --num-sentences or another OUT_DIR")


def _size(n: int) -> str:
    r"""A byte count in words: ``1.4 GB``."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"  # 1e20 bytes: '100,000,000.0 TB', not '100000000.0 TB'
    return f"{n / 1e3:.0f} kB"


def _check_target(out: Path, ours: Path | None = None) -> None:
    r"""``out`` may be made, or filled: it has no whitespace and is not there or empty (but for ``ours``, the
    run's temporary folder in it, and killed runs' ones)."""
    if any(c.isspace() for c in str(out)):
        raise SynthError(f"{out}: whitespace in the path would break wav.scp; choose another OUT_DIR")
    if out.exists() and not out.is_dir():
        raise SynthError(f"{out}: a file; remove it or choose another OUT_DIR")
    under = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if under is not None:  # said 'File exists' of it, after the notes, once the plan was drawn
        raise SynthError(f"{out}: {under} is a file, not a folder; choose another OUT_DIR")
    held = [c.name for c in out.iterdir() if c != ours and not c.name.startswith(f".{out.name}.tmp-")
            and c.name != f".{out.name}.synth.lock"] if out.is_dir() else []
    if held:  # an empty folder is filled ('already exists' said of one holding only a .keep)
        raise SynthError(f"{out}: not empty (it holds {sorted(held)[0]}{' and more' * (len(held) > 1)}); remove it or "
                         "choose another OUT_DIR")


def _move_into(tmp: Path, out: Path) -> None:
    r"""Moves everything in ``tmp`` into ``out`` (a rename each, on one file system), then removes ``tmp``; an
    error or Ctrl-C on the way takes the moved ones out again, leaving ``out`` as empty as it was."""
    moved = []
    try:
        for entry in sorted(tmp.iterdir()):
            os.replace(entry, out / entry.name)
            moved.append(out / entry.name)
        tmp.rmdir()
    except BaseException:
        for path in moved:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


def _render_all(plan: Plan, wav_root: Path, noise_std: float, nj: int, quiet: bool) -> dict[str, Rendered]:
    r"""Renders every job, each in a fresh process (see :mod:`flowaccent.synth.render`)."""
    jobs = sorted(plan.jobs, key=lambda job: (-len(job.utts), job.speaker))
    context = _fresh_process_context()
    rendered: dict[str, Rendered] = {}
    worker = functools.partial(_render_checked, wav_root=wav_root, noise_std=noise_std)
    with progress_bar(total=plan.num_utts, unit="utt", desc="synth", disable=quiet) as bar:
        for results in imap_fresh_processes(worker, jobs, nj, context):  # on an error the running jobs finish
            rendered.update((r.utt, r) for r in results)
            bar.update(len(results))
    return rendered


def _fresh_process_context():
    r"""A multiprocessing context whose workers start with espeak-ng untouched.

    ``fork`` while this process has not used espeak-ng (cheap, and no
    ``__main__`` guard needed); otherwise ``forkserver`` or ``spawn``, whose
    workers start from a process that never loaded it.
    """
    from flowaccent.synth.espeak import Espeak

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and Espeak._instance is None:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["flowaccent.synth.render"])
        return context
    return multiprocessing.get_context("spawn")


def _render_checked(job: Job, wav_root: Path, noise_std: float) -> list[Rendered]:
    from flowaccent.synth.espeak import Espeak

    if Espeak.get().sample_rate != _SAMPLE_RATE:
        raise SynthError(f"espeak-ng produces {Espeak.get().sample_rate} Hz, expected {_SAMPLE_RATE}")
    return render_job(job, wav_root, noise_std)


def _write_data_dirs(plan: Plan, rendered: dict[str, Rendered], tmp: Path, out: Path) -> dict[str, int]:
    r"""Writes the tables of every data dir into ``tmp``; ``wav.scp`` points into the final ``out``."""
    num_utts = {}
    for name, accent in SETS.items():
        folder = tmp / name
        folder.mkdir()
        tables: dict[str, dict[str, str]] = {
            k: {} for k in ("wav.scp", "text", "utt2spk", "utt2accent", "utt2score", "utt2phones")
        }
        for job in (job for job in plan.jobs if job.data_dir == name):
            for utt in job.utts:
                r = rendered[utt.utt]
                tables["wav.scp"][utt.utt] = str(out / r.wav_path.relative_to(tmp))
                tables["text"][utt.utt] = transcript(utt.sentence)
                tables["utt2spk"][utt.utt] = job.speaker
                tables["utt2accent"][utt.utt] = accent
                tables["utt2score"][utt.utt] = f"{score_of(r.num_accented, r.num_words):.2f}"
                tables["utt2phones"][utt.utt] = r.phones
        for table, mapping in tables.items():
            write_table(folder / table, mapping)
        write_spk2utt(folder / "spk2utt", tables["utt2spk"])
        write_ctm(folder / "phones.ctm", {u: rendered[u].segments for u in tables["utt2spk"]})
        write_ctm(folder / "canonical.ctm", {u: rendered[u].canonical for u in tables["utt2spk"]})
        num_utts[name] = len(tables["utt2spk"])
    return num_utts


def _write_manifest(plan: Plan, config: SynthConfig, tmp: Path) -> None:
    r"""Writes ``synth_config.yaml`` (the resolved config) and ``speakers`` (every voice)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        loader = version("espeakng-loader")
    except PackageNotFoundError:  # importable but not installed as a distribution
        loader = "unknown"
    manifest = {"config": config.to_dict(), "espeakng_loader": loader, "sample_rate": _SAMPLE_RATE}
    (tmp / "synth_config.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False), encoding="utf-8")
    speakers = {}
    for job in plan.jobs:
        p = job.persona
        strength = plan.speaker_strength.get(job.speaker, 0.0)
        speakers[job.speaker] = (
            f"variant={p.variant} rate_wpm={p.rate_wpm} pitch={p.pitch} pitch_range={p.pitch_range} "
            f"data_dir={job.data_dir} mean_strength={strength:.3f}"
        )
    write_table(tmp / "speakers", speakers)
