# shellcheck shell=bash disable=SC2154  # sourced; stage, stop_stage and exp are the recipe's
# Stage bookkeeping for recipes (source it after parse_options.sh, once $exp is set). As in Kaldi,
# `--stage N --stop-stage M` runs stages N..M. Each finished stage leaves $exp/.done/stageK, so a
# rerun without --stage skips what finished (and says so) and goes on where the last run stopped. An explicit
# --stage N runs stages N..M again, finished or not: the markers of N and of every later stage are
# removed as the first stage starts (a later stage may use what N makes, so a plain rerun then runs it
# again, even one past --stop-stage), after the recipe's own checks: a refused command changes nothing
# (a typo in --train-opts removed them, and the next plain rerun redid stages 3-6). A recipe's checks
# ask `would_run K` and `stage_done K`, which count those markers as gone already; `should_run K`
# starts a stage. The options that shape the results ($recorded_options, set by the recipe) are
# kept in $exp/.done/options: a rerun without --stage with other values is refused, as it would
# skip stages whose outputs came from the old ones; so is --stage N with another value of an option that a
# finished stage before N used ($option_stages, "name:K ...", the first stage each option shapes; 0 where
# not listed): that stage is not redone, and the options recorded would no longer say what made the results.
# An option recorded empty counts as not recorded (one a recipe added later leaves older runs usable), and
# so does a change no finished stage saw (the option's first stage and those after it not run yet).
# --stage N is refused where a stage before N has not finished (it would run on what is not there, or on
# what an earlier run left: the old models scored on a new corpus), and so is --stage past --stop-stage
# (it removed the markers of finished stages and ran nothing), and --stage past the recipe's last stage
# ($last_stage, set by the recipe: it ran nothing and said "Done").
for option in stage stop_stage; do
  [[ ${!option} =~ ^[0-9]+$ ]] || { echo "$0: --${option//_/-} takes a stage number, not '${!option}'" >&2; exit 1; }
done
unset option
if [ -n "${last_stage:-}" ] && [ "$stage" -gt "$last_stage" ]; then
  echo "$0: --stage $stage: this recipe's stages are 0 to $last_stage" >&2
  exit 1
fi
if [ "$stage" -gt "$stop_stage" ]; then
  echo "$0: --stage $stage is past --stop-stage $stop_stage: no stage to run" >&2
  exit 1
fi
options_now() { for name in ${recorded_options:-}; do printf '%s=%s\n' "$name" "${!name}"; done; }
options_set() { grep -v '^[^=]*=$' || true; }  # the options with a value (grep's status 1: none)
first_stage() { local pair first=0; for pair in ${option_stages:-}; do [ "${pair%%:*}" != "$1" ] || first=${pair#*:}; done
  echo "$first"; }  # the first stage option $1 shapes
done_from() { local marker; for marker in "$exp"/.done/stage*; do  # whether a stage >= $1 has finished
  [ -f "$marker" ] && [ "${marker##*/stage}" -ge "$1" ] && return 0; done; return 1; }
if [[ " ${given_options:-} " == *" stage "* ]] && [ "$stage" -gt 0 ]; then
  for ((earlier = 0; earlier < stage; earlier++)); do
    if [ ! -f "$exp/.done/stage$earlier" ]; then
      echo "$0: --stage $stage: stage $earlier has not finished in $exp (no $exp/.done/stage$earlier); give" \
        "--stage $earlier (or leave --stage out: a rerun goes on where the last one stopped)" >&2
      exit 1
    fi
  done
  unset earlier
fi
if [[ " ${given_options:-} " == *" stage "* ]]; then
  if [ -f "$exp/.done/options" ]; then
    while IFS= read -r line; do
      name=${line%%=*} old=${line#*=}
      [[ " ${recorded_options:-} " == *" $name "* ]] || continue
      first=$(first_stage "$name")
      if [ "$first" -lt "$stage" ] && [ -f "$exp/.done/stage$first" ] && [ "$old" != "${!name}" ]; then
        echo "$0: --stage $stage does not redo stage $first, whose results came from --${name//_/-} '$old'" \
          "(now '${!name}'): give --stage $first or less to redo them with the new value, or another --exp" >&2
        exit 1
      fi
    done < <(cat "$exp/.done/options")
    unset line name old first
  fi
  redo_from=$stage  # the markers from it on: removed by the first should_run
elif [ -f "$exp/.done/options" ] && [ -n "$(ls "$exp"/.done/stage* 2>/dev/null)" ] \
    && [ "$(options_set < "$exp/.done/options")" != "$(options_now | options_set)" ]; then
  changed=$( { diff <(options_set < "$exp/.done/options") <(options_now | options_set) || true; } \
    | sed -n 's/^[<>] \([^=]*\)=.*/\1/p' | awk '!seen[$0]++' | tr '\n' ' ')  # diff's status 1 would end a recipe (set -e)
  seen='' values=''
  for name in $changed; do
    done_from "$(first_stage "$name")" || continue
    seen="$seen $name"
    old=$(sed -n "s/^$name=//p" "$exp/.done/options")
    values="$values; --${name//_/-} '$old' (now '${!name}')"
  done
  if [ -n "$seen" ]; then
    echo "$0: $exp was made with other options (${seen# }) than these; a rerun would skip the stages" \
      "they made. Give --stage N to redo from the stage the change concerns, or another --exp" \
      "(the old values: $exp/.done/options${values})" >&2
    exit 1
  fi
  unset changed seen name values old
fi
stage_done() { [ -f "$exp/.done/stage$1" ] && { [ -z "${redo_from:-}" ] || [ "$1" -lt "$redo_from" ]; }; }
would_run() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] && ! stage_done "$1"; }
should_run() {  # its first call comes after the recipe's own checks
  local marker k top runs='' skipped=''
  if [ -n "${redo_from:-}" ]; then  # --stage N: its marker and the later ones go now, the checks passed
    for marker in "$exp"/.done/stage*; do
      if [ -f "$marker" ] && [ "${marker##*/stage}" -ge "$redo_from" ]; then rm -f "$marker"; fi
    done
    redo_from=
  fi
  if [ -z "${stages_started:-}" ] && [ -n "${last_stage:-}" ]; then  # a finished run's rerun said only "Done: ..."
    stages_started=1
    top=$((stop_stage < last_stage ? stop_stage : last_stage))
    for ((k = stage; k <= top; k++)); do
      if would_run "$k"; then runs=1; elif [ -z "$runs" ]; then skipped=${skipped:-$k}-$k; fi
    done
    if [ -z "$runs" ]; then
      echo "$0: stages $stage to $top have finished in $exp ($exp/.done); nothing to run" \
        "(--stage N runs stage N and the later ones again)" >&2
    elif [ -n "$skipped" ]; then  # a rerun went on at stage K without a word of those before it
      k=${skipped%%-*} top=${skipped##*-}
      [ "$k" = "$top" ] && skipped="stage $k has" || skipped="stages $k to $top have"
      echo "$0: $skipped finished in $exp ($exp/.done): skipped (--stage N runs stage N and the later ones" \
        "again)" >&2
    fi
  fi
  would_run "$1"
}
mark_done() { mkdir -p "$exp/.done"; touch "$exp/.done/stage$1"; options_now > "$exp/.done/options"; }
. "$(dirname "${BASH_SOURCE[0]}")/foreground.sh"  # each flowaccent stops with the recipe (kill PID, Ctrl-C)
