#!/usr/bin/env python3
"""Copy a user's corpus into a fresh flowaccent data dir: a Kaldi data dir, or a bare wav.scp list.
An existing TARGET is replaced whole (its old features too); nothing is written where SOURCE is unreadable.

From a Kaldi data dir only the tables that describe the audio are taken (wav.scp, segments, text, utt2spk,
utt2accent, utt2score; spk2utt is made again from utt2spk): features are recomputed by `flowaccent fbank`. A
bare wav.scp list becomes a data dir with one speaker per utterance. An --accent fills utt2accent when missing.

Usage: prepare_dir.py SOURCE TARGET [--accent NAME]
       prepare_dir.py --check SOURCE   (everything but the writing: what would stop it, said before any set is replaced)
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from flowaccent.data import load_data_dir, read_table, write_spk2utt, write_table
from flowaccent.errors import FlowAccentError

TABLES = ("wav.scp", "segments", "text", "utt2spk", "utt2accent", "utt2score")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("target", nargs="?")
    parser.add_argument("--accent", default="")
    parser.add_argument("--check", action="store_true", help="check SOURCE, write nothing (no TARGET)")
    args = parser.parse_args()
    if (args.target is None) != args.check:
        parser.error("give TARGET, or --check without it")
    if args.check:
        with tempfile.TemporaryDirectory() as scratch:
            return prepare(Path(args.source), Path(scratch) / "set", args.accent)
    return prepare(Path(args.source), Path(args.target), args.accent)


def prepare(source: Path, target: Path, accent: str) -> int:
    if not source.exists():
        raise FlowAccentError(f"{source}: no such data dir or wav.scp list")
    if source.is_dir() and not (source / "utt2spk").exists() and (source / "wav.scp").is_file():
        raise FlowAccentError(f"{source / 'utt2spk'}: required but missing (speakers not known: give "
                              f"{source / 'wav.scp'} itself, a bare list, for one speaker per utterance)")
    if source.is_dir():
        data = load_data_dir(source, require=("wav.scp",), unused=("spk2utt",))  # made anew from utt2spk
        tables = {name: dict(data.table(name)) for name in TABLES if data.has(name)}
    else:
        wav = read_table(source)
        tables = {"wav.scp": wav, "utt2spk": {u: u for u in wav}}
    if accent and "utt2accent" not in tables:
        tables["utt2accent"] = {u: accent for u in tables["utt2spk"]}
    # fresh: made beside the target, checked, then put in its place (an old dir's features and tables go)
    building = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    for name, table in tables.items():
        write_table(building / name, table)
    write_spk2utt(building / "spk2utt", tables["utt2spk"])
    load_data_dir(building)
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FlowAccentError as error:
        print(f"prepare_dir.py: error: {error}", file=sys.stderr)
        sys.exit(1)
