# Kaldi-style option parsing for recipes (after utils/parse_options.sh): for every variable
# already set in the calling script, `--var-name value` (or `--var-name=value`) overrides it.
# Source it after the defaults. The names given are in $given_options; a positional argument is
# an error (it would end the options silently: those after it were ignored).
given_options=
while true; do
  [ $# -eq 0 ] && break
  case "$1" in
    --help|-h)
      echo "usage: $0 [options]; each option sets the variable at the top of the script of its name" >&2
      script=$0; [ -f "$script" ] || script=$(basename "$0")  # the recipes cd to their own dir first
      sed -n '1,/parse_options\.sh/p' "$script" | grep -E '^[a-z_][a-z0-9_]*=' | while IFS= read -r line; do
        option=${line%%=*}
        echo "  --${option//_/-} (default: ${line#*=})"
      done >&2
      exit 0 ;;
    --*=*)
      name=$(echo "${1%%=*}" | sed 's/^--//; s/-/_/g'); value="${1#*=}"; shift ;;
    --*)
      name=$(echo "$1" | sed 's/^--//; s/-/_/g')
      [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
      value="$2"; shift 2 ;;
    *) echo "$0: unexpected argument '$1' (options are --name value)" >&2; exit 1 ;;
  esac
  if ! declare -p "$name" >/dev/null 2>&1; then
    echo "$0: unknown option --${name//_/-}" >&2
    exit 1
  fi
  printf -v "$name" '%s' "$value"
  given_options="$given_options $name"
done
