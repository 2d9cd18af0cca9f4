#!/usr/bin/env bash
# Demo recipe: synthetic corpus -> fbank -> flows -> scores -> report.
# The stages arrive with the issues that build them (corpus, model, scoring, recipes).
set -euo pipefail
echo "recipes/demo/run.sh: the demo recipe is not there yet; 'make test' runs what exists." >&2
exit 0
