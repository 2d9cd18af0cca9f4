#!/usr/bin/env python3
"""Copy a user's corpus into a fresh flowaccent data dir: a Kaldi data dir, or a bare wav.scp list.
An existing TARGET is replaced whole (its old features too); nothing is written where SOURCE is unreadable.

From a Kaldi data dir only the tables that describe the audio are taken (wav.scp, segments, text, utt2spk,
spk2utt, utt2accent, utt2score): features are recomputed by `flowaccent fbank`. A bare wav.scp list
becomes a data dir with one speaker per utterance. An --accent fills utt2accent when missing.

Usage: prepare_dir.py SOURCE TARGET [--accent NAME]
"""

import argparse
import shutil
import sys
from pathlib import Path

from flowaccent.data import load_data_dir, read_table, write_spk2utt, write_table
from flowaccent.errors import FlowAccentError

TABLES = ("wav.scp", "segments", "text", "utt2spk", "utt2accent", "utt2score")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--accent", default="")
    args = parser.parse_args()
    source, target = Path(args.source), Path(args.target)
    if source.is_dir():
        data = load_data_dir(source, require=("wav.scp",), unused=("spk2utt",))  # made anew from utt2spk
        tables = {name: dict(data.table(name)) for name in TABLES if data.has(name)}
    else:
        wav = read_table(source)
        tables = {"wav.scp": wav, "utt2spk": {u: u for u in wav}}
    if args.accent and "utt2accent" not in tables:
        tables["utt2accent"] = {u: args.accent for u in tables["utt2spk"]}
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
