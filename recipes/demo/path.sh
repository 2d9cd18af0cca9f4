# shellcheck shell=bash  # sourced, never run alone
# flowaccent and the Python that has it on PATH: recipes/common/path.sh says which.
. "$(dirname "${BASH_SOURCE[0]}")/../common/path.sh"
