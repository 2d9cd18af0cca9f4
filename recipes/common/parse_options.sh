# shellcheck shell=bash  # sourced, never run alone
# Kaldi-style option parsing for recipes (after utils/parse_options.sh): for every variable the calling
# script sets at its top, before it sources this file (and ./cmd.sh's, where the recipe has one),
# `--var-name value` (or `--var-name=value`) overrides it. Other variables are not options (--name,
# --given-options were taken, the second turning a rerun into --stage 0). The names given are in
# $given_options; a positional argument is an error (it would end the options silently: those after it
# were ignored).
recipe_options() {  # the option variables, in the order of the script (and then cmd.sh)
  local script=${RECIPE:-$0}  # RECIPE: the script's real path, set before it cd's to its own folder
  [ -f "$script" ] || script=$(basename "$0")
  { sed -n '1,/parse_options\.sh/p' "$script"; [ -f cmd.sh ] && cat cmd.sh; } \
    | grep -E '^[a-z_][a-z0-9_]*=' || true
}
is_option() { recipe_options | cut -d= -f1 | grep -qxF "$1"; }
value_and_note() {  # 'VALUE  # NOTE' -> the lines VALUE and NOTE: the note from a '#' that starts a word, as bash
  # reads a comment (not within quotes, an escape, $(...) or ${...}: ${x:-a b}, "a  # b", x\ y)
  awk -v q="'" '{ s = $0; sq = dq = depth = 0
    for (i = 1; i <= length(s); i++) {
      c = substr(s, i, 1)
      if (c == "\\" && !sq) { i++; continue }
      if (c == q && !dq) sq = !sq
      else if (c == "\"" && !sq) dq = !dq
      else if (!sq && !dq && (c == "(" || c == "{")) depth++
      else if (!sq && !dq && (c == ")" || c == "}") && depth) depth--
      else if (!sq && !dq && !depth && c == "#" && i > 1 && substr(s, i - 1, 1) ~ /[ \t]/) {
        value = substr(s, 1, i - 1); sub(/[ \t]+$/, "", value); note = substr(s, i + 1); sub(/^[ \t]+/, "", note)
        print value; print note; exit
      }
    }
    print s; print "" }'
}
given_options=
while true; do
  [ $# -eq 0 ] && break
  case "$1" in
    --help|-h)  # the script's opening comment (what it does), then each option with its note ('x=1  # note')
      echo "usage: $0 [options]; each option sets the variable at the top of the script of its name" >&2
      script=${RECIPE:-$0}; [ -f "$script" ] || script=$(basename "$0")
      { read -r line; while IFS= read -r line && [[ $line == '#'* ]]; do line=${line#'#'}; echo "${line# }"; done
      } < "$script" >&2
      echo "options:" >&2
      recipe_options | while IFS= read -r line; do
        option=${line%%=*}
        { IFS= read -r default; IFS= read -r note; } < <(printf '%s\n' "${line#*=}" | value_and_note)
        note=${note:+  $note}
        [[ $default =~ ^\$\{[a-z_0-9]+:-(.*)\}$ ]] && default=${BASH_REMATCH[1]}  # cmd.sh's x=${x:-flowaccent}
        echo "  --${option//_/-} (default: $default)$note"
      done >&2
      exit 0 ;;
    --*=*)
      name=${1%%=*}; name=${name#--}; name=${name//-/_}; value="${1#*=}"; shift ;;
    --*)
      name=${1#--}; name=${name//-/_}
      [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
      # '--quick --stop-stage 0' said "unexpected argument '0'": the next option taken as the value
      next_name=${2#--}; if [[ $2 == --* ]] && is_option "${next_name//-/_}"; then
        echo "$0: option $1 needs a value (got the option $2)" >&2; exit 1
      fi
      value="$2"; shift 2 ;;
    *) echo "$0: unexpected argument '$1' (options are --name value)" >&2; exit 1 ;;
  esac
  if ! is_option "$name"; then
    echo "$0: unknown option --${name//_/-} (the options: $0 --help)" >&2
    exit 1
  fi
  printf -v "$name" '%s' "$value"
  given_options="$given_options $name"
done
unset name value next_name
