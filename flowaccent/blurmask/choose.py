r"""Which utterances of each set a blur-mask run explains: ``--utts`` spread over each set, or those of
``--utt-list``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flowaccent.blurmask.config import RunConfig
from flowaccent.blurmask.tables import utt_file_name
from flowaccent.data.datadir import DataDir
from flowaccent.data.kaldi_text import fields
from flowaccent.errors import ConfigError


def select_utterances(data: DataDir, count: int) -> list[str]:
    r"""``count`` utterances of ``data`` spread evenly over its (sorted) list; all when it has fewer."""
    utts = list(data.table("feats.scp"))
    if len(utts) <= count:
        return utts
    return [utts[round(i)] for i in np.linspace(0, len(utts) - 1, count)]


def choose_utterances(sets: dict[str, DataDir], run: RunConfig) -> dict[str, list[str]]:
    r"""The utterances of each set: those of ``run.utt_list`` (in ``feats.scp``'s order), else ``run.utts`` spread
    over each set (:func:`select_utterances`). A listed utterance in no set, or a set with none listed, is an error
    (a typo would otherwise mask nothing, or mask a set the list left out)."""
    if not run.utt_list:
        return {name: select_utterances(data, run.utts) for name, data in sets.items()}
    path = Path(run.utt_list)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--utt-list {path}: cannot read it ({type(error).__name__}: {error})") from None
    if text.startswith("\ufeff"):  # invisible in the error that no utterance matched
        raise ConfigError(f"--utt-list {path}: starts with a UTF-8 byte-order mark (BOM); save the file without it")
    # lines at \n, fields at ASCII whitespace, as Kaldi's: str.splitlines and str.split cut ids that hold a no-break
    # space, U+2028 or U+0085
    wanted = [line[0] for line in map(fields, text.split("\n")) if line]
    if not wanted:
        raise ConfigError(f"--utt-list {path}: no utterance ids in it")
    listed = set(wanted)
    chosen = {name: [u for u in data.table("feats.scp") if u in listed] for name, data in sets.items()}
    found = {u for utts in chosen.values() for u in utts}
    missing = [u for u in dict.fromkeys(wanted) if u not in found]
    if missing:
        raise ConfigError(f"--utt-list {path}: {len(missing)} utterance(s) in none of the data dirs' "
                          f"feats.scp, e.g. '{missing[0]}'")
    for name, utts in chosen.items():
        if not utts:
            raise ConfigError(f"--utt-list {path}: names no utterance of set {name}; leave that --data out")
    return chosen


def check_file_names(chosen: dict[str, list[str]]) -> None:
    r"""A :class:`ConfigError` where two utterances of a set would share their files (:func:`utt_file_name`: ``a/b``
    and ``a_b``): the second's overwrote the first's, and the run failed moving them into place, every time."""
    for name, utts in chosen.items():
        seen: dict[str, str] = {}
        for utt in utts:
            if (other := seen.setdefault(utt_file_name(utt), utt)) != utt:
                raise ConfigError(f"set {name}: utterances '{other}' and '{utt}' would share the files "
                                  f"{utt_file_name(utt)}.npz and figures (a / in an id is written _): leave one "
                                  "out (--utt-list)")
