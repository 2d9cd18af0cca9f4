#!/usr/bin/env python3
"""Split a data dir into training and held-out parts by utterance, as the lab split WSJ (9/10, 1/10).

The held-out utterances are a seeded random choice, so the split is the same on every run.

Usage: split_heldout.py SOURCE TRAIN HELDOUT [--fraction 0.1] [--seed 0]
"""

import argparse
import sys

import numpy as np

from flowaccent.data import load_data_dir, subset_data_dir
from flowaccent.errors import FlowAccentError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("train")
    parser.add_argument("heldout")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not 0 < args.fraction < 1:
        raise FlowAccentError(f"--fraction takes a fraction between 0 and 1 (both excluded), not {args.fraction}")
    utts = load_data_dir(args.source).utts
    count = max(1, round(args.fraction * len(utts)))
    if count >= len(utts):
        raise FlowAccentError(f"{args.source}: {len(utts)} utterances are too few to hold out {args.fraction:.0%}")
    held = set(np.random.default_rng(args.seed).choice(utts, count, replace=False).tolist())
    subset_data_dir(args.source, args.train, [u for u in utts if u not in held])
    subset_data_dir(args.source, args.heldout, sorted(held))
    print(f"split_heldout.py: {len(utts) - count} train, {count} held out", file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FlowAccentError as error:
        print(f"split_heldout.py: error: {error}", file=sys.stderr)
        sys.exit(1)
