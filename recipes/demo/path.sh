# shellcheck shell=bash  # sourced, never run alone
# Puts the repository's .venv (made by `make install`) on PATH when there is one.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -x "$here/../../.venv/bin/flowaccent" ]; then
  export PATH="$here/../../.venv/bin:$PATH"
fi
export LC_ALL=C
