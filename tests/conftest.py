r"""Shared fixtures: tiny real Kaldi data dirs with WAV audio made on the fly."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

#: The repository's root (the folder of pyproject.toml).
REPO_ROOT = Path(__file__).resolve().parent.parent


def recipe_env() -> dict[str, str]:
    r"""The environment a test runs a recipe in: the ``flowaccent`` of the Python running the tests, as the active
    virtual environment (the recipe's path.sh then puts it on PATH, not the repository's .venv: ``make
    test-lower`` runs the tests in another), and one thread per command."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "OMP_NUM_THREADS": "1", "VIRTUAL_ENV": sys.prefix,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def make_wav_data_dir(
    root: Path,
    speakers: tuple[str, ...] = ("spkA", "spkB"),
    utts_per_spk: int = 3,
    sample_rate: int = 16000,
    pipe_last: bool = True,
    seed: int = 0,
) -> Path:
    r"""Writes a Kaldi data dir ``root/data`` with noise-and-tone WAVs; returns its path.

    The last utterance of each speaker is a ``cat FILE |`` pipe entry when ``pipe_last``.
    """
    rng = np.random.default_rng(seed)
    data = root / "data"
    wav_dir = root / "wav"
    data.mkdir(parents=True)
    wav_dir.mkdir()
    wav_scp, utt2spk, spk2utt = [], [], []
    for spk in speakers:
        utts = []
        for i in range(utts_per_spk):
            utt = f"{spk}-{i:03d}"
            n = sample_rate // 2 + int(rng.integers(0, sample_rate // 2))
            t = np.arange(n) / sample_rate
            x = 3000 * np.sin(2 * np.pi * (200 + 100 * i) * t) + 500 * rng.standard_normal(n)
            path = wav_dir / f"{utt}.wav"
            wavfile.write(path, sample_rate, x.astype(np.int16))
            last = i == utts_per_spk - 1
            wav_scp.append(f"{utt} cat {path} |" if pipe_last and last else f"{utt} {path}")
            utt2spk.append(f"{utt} {spk}")
            utts.append(utt)
        spk2utt.append(f"{spk} {' '.join(utts)}")
    (data / "wav.scp").write_text("\n".join(wav_scp) + "\n")
    (data / "utt2spk").write_text("\n".join(utt2spk) + "\n")
    (data / "spk2utt").write_text("\n".join(spk2utt) + "\n")
    return data


@contextlib.contextmanager
def fails_after(seconds: int, message: str):
    r"""Raises ``TimeoutError(message)`` in the main thread after ``seconds``: a test that hangs fails
    instead of blocking CI."""

    def expire(*_):
        raise TimeoutError(message)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def wav_data_dir(tmp_path: Path) -> Path:
    r"""A valid data dir of 2 speakers x 3 utterances with wav.scp, utt2spk, spk2utt."""
    return make_wav_data_dir(tmp_path)


@pytest.fixture
def python_sigint():
    r"""Python's Ctrl-C handler, even where the tests run with SIGINT ignored (a background job, ``make test &``)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


#: The test files over ~20 s, longest first, in seconds under ``make test`` on a 2-core Intel Xeon (2026-12-06):
#: torchrun 175, benchmark options 170, WSJ/L2 recipe 145, quick demo 123, quick benchmark run 121, report 114 (217
#: before its t-SNE was capped, on an AMD EPYC), scoring's shares 77, blurmask 73, the rest under 40 (the whole
#: suite: 1227 s of tests, 10.6 min in all). They run first (with ``--no-loadscope-reorder``, pytest-xdist
#: hands out the files in this order), so the short ones fill in around them: left to the order by number of
#: tests, the quick demo started last and ran 100 s alone while the other worker idled.
LONGEST_FIRST = (
    "train/test_distributed.py", "benchmarks/test_bench_options.py", "recipes/test_wsj_l2.py",
    "recipes/test_demo_quick.py", "benchmarks/test_run_all.py", "score/test_report.py", "score/test_shares.py",
    "blurmask/test_cli.py", "faults/test_interruptions.py", "train/test_resume.py", "score/test_score.py",
    "train/test_train.py",
)


def pytest_collection_modifyitems(config, items):
    r"""The files of :data:`LONGEST_FIRST` first, in its order; the rest as collected (a stable sort: a file's
    tests stay together and in order)."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    here = Path(__file__).parent

    def order(item) -> int:
        if not item.path.is_relative_to(here):
            return len(rank)
        return rank.get(item.path.relative_to(here).as_posix(), len(rank))

    items.sort(key=order)


def pytest_configure(config):
    r"""Under pytest-xdist (``-n 2``), one thread per worker: two workers of two torch threads each on a
    2-core machine spend their time waiting for each other. The commands the tests start inherit it."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
        torch.set_num_threads(1)
