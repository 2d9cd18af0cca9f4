# shellcheck shell=bash  # sourced, never run alone
# The commands a recipe runs stop with it. Bash runs a trap only once the foreground command it waits for has
# ended, and without one a `kill PID` of run.sh (SIGTERM) ended the shell alone: its `flowaccent train` went
# on, orphaned. Sourced by stages.sh, this runs each `flowaccent` (and what `foreground CMD ...` is given) as
# a child the shell waits for with `wait`, which a signal cuts short:
#   SIGTERM (kill PID, Slurm): passed on to the command, which cleans up (train writes its checkpoint); the
#     recipe then dies by SIGTERM (status 143).
#   SIGINT (Ctrl-C): a terminal sends it to the command as well, so it is not sent again (a second Ctrl-C
#     cuts a command's cleanup short); the recipe waits for the command to clean up, then dies by SIGINT, so a
#     shell loop over recipes stops too. (A `kill -INT` of run.sh alone lets the command finish first.)
# Only commands the recipe's own shell runs are covered: a subshell, a `$(...)` or a pipeline drops the trap
# and waits as before, so run a command in another folder with `foreground_in DIR CMD ...`, not `(cd DIR && ...)`.
_fg_child=

foreground() {  # foreground CMD ARGS...: runs CMD as the recipe's current command; returns its status
  foreground_in . "$@"
}

foreground_in() {  # foreground_in DIR CMD ARGS...: foreground, with CMD run in folder DIR
  local dir=$1
  shift
  # A background command of a shell without job control ignores SIGINT; `trap -` gives it back.
  (trap - INT QUIT; cd "$dir" && exec "$@") &
  _fg_child=$!
  local status=0
  wait "$_fg_child" || status=$?
  _fg_child=
  return "$status"
}

_fg_stop() {  # _fg_stop SIGNAL: SIGNAL came; the running command ends first, then the recipe dies by it
  trap - "$1"
  if [ -n "$_fg_child" ]; then
    [ "$1" = INT ] || kill -s "$1" "$_fg_child" 2>/dev/null || true
    wait "$_fg_child" 2>/dev/null || true
  fi
  # the command's own hint ('flowaccent train --exp exp/... --resume') is of the recipe's folder, not the caller's
  echo "$0: stopped by SIG$1; run it again with the same options to go on (the finished stages are skipped)" >&2
  kill -s "$1" $$
}
trap '_fg_stop TERM' TERM
trap '_fg_stop INT' INT

# Once this is sourced, `command -v flowaccent` names this function, not the program: the recipes' cmd.sh, which
# takes the program's path for torchrun, is read before.
flowaccent() { foreground flowaccent "$@"; }
