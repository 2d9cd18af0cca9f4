# shellcheck shell=bash  # sourced, never run alone
# Puts the repository's .venv (made by `make install`) on PATH when there is one, unless an active virtual
# environment has flowaccent (VIRTUAL_ENV, set by `source VENV/bin/activate`): then that one runs.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/flowaccent" ]; then
  export PATH="$VIRTUAL_ENV/bin:$PATH"
elif [ -x "$here/../../.venv/bin/flowaccent" ]; then
  export PATH="$here/../../.venv/bin:$PATH"
fi
export LC_ALL=C
if ! command -v flowaccent > /dev/null; then  # it ran stage 0 into 'exec: flowaccent: not found' (status 127)
  echo "$0: flowaccent not found: run 'make install' in the repository root (the recipes use its .venv), or" \
    "activate a virtual environment that has flowaccent" >&2
  exit 1
fi
