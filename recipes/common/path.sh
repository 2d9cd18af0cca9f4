# shellcheck shell=bash  # sourced by each recipe's path.sh, never run alone
# Puts the repository's .venv (made by `make install`) on PATH when there is one, unless an active virtual
# environment has flowaccent (VIRTUAL_ENV, set by `source VENV/bin/activate`): then that one runs. The recipes'
# local/*.py scripts import flowaccent with the first python3 on PATH: where that is not flowaccent's (flowaccent
# on PATH by a link, as pipx puts it), the Python beside flowaccent goes first (the demo's last stage failed on
# 'No module named flowaccent', after every stage before it had run).
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/flowaccent" ]; then
  export PATH="$VIRTUAL_ENV/bin:$PATH"
elif [ -x "$here/../../.venv/bin/flowaccent" ]; then
  export PATH="$here/../../.venv/bin:$PATH"
fi
export LC_ALL=C
if ! command -v flowaccent > /dev/null; then  # it ran stage 0 into 'exec: flowaccent: not found' (status 127)
  if [ -n "${VIRTUAL_ENV:-}" ]; then
    echo "$0: flowaccent not found: the active virtual environment ($VIRTUAL_ENV) has no bin/flowaccent; install" \
      "flowaccent into it, or deactivate it to use the repository's .venv ('make install' in the repository root)" >&2
  else
    echo "$0: flowaccent not found: run 'make install' in the repository root (the recipes use its .venv), or" \
      "activate a virtual environment that has flowaccent" >&2
  fi
  exit 1
fi
if ! python3 -c 'import flowaccent' 2> /dev/null; then
  beside=$(dirname "$(realpath "$(command -v flowaccent)")")
  if [ -x "$beside/python3" ] && "$beside/python3" -c 'import flowaccent' 2> /dev/null; then
    export PATH="$beside:$PATH"
  else
    echo "$0: $(command -v python3 || echo python3) cannot import flowaccent, which the recipe's local/*.py scripts" \
      "need, and no python3 beside $(command -v flowaccent) can: activate the virtual environment flowaccent is" \
      "installed in" >&2
    exit 1
  fi
  unset beside
fi
unset here
