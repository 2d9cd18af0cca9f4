#!/usr/bin/env python3
"""Keep the utterances of a rated data dir whose utt2score lies in [--min, --max] (e.g. only 1 and 2).

Usage: rating_subset.py SOURCE TARGET [--min 1] [--max 2] [--skip-empty]
"""

import argparse
import shutil
import sys

from flowaccent.data import load_data_dir, subset_data_dir
from flowaccent.errors import FlowAccentError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--min", type=float, default=float("-inf"))
    parser.add_argument("--max", type=float, default=float("inf"))
    parser.add_argument("--skip-empty", action="store_true",
                        help="no utterance in range: say so, remove TARGET and exit 0 (default: an error)")
    args = parser.parse_args()
    scores = load_data_dir(args.source).utt2score()
    chosen = [u for u, s in scores.items() if args.min <= s <= args.max]
    if not chosen:
        message = f"{args.source}: no utterance rated in [{args.min}, {args.max}]"
        if not args.skip_empty:
            raise FlowAccentError(message)
        shutil.rmtree(args.target, ignore_errors=True)
        print(f"rating_subset.py: {message}: no subset", file=sys.stderr)
        return 0
    subset_data_dir(args.source, args.target, chosen)
    print(f"rating_subset.py: {args.target}: {len(chosen)} of {len(scores)} utterances of {args.source}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except FlowAccentError as error:
        print(f"rating_subset.py: error: {error}", file=sys.stderr)
        sys.exit(1)
