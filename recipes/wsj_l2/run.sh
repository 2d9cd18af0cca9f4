#!/usr/bin/env bash
# The lab's experiment on real corpora: flows trained on native English (WSJ) score held-out WSJ,
# Chinese-accented and Japanese-accented English. Inputs are Kaldi data dirs you already have (or
# bare wav.scp lists):
#   --wsj-train  WSJ training data, e.g. kaldi/egs/wsj/s5/data/train_si284 (split 9/10 train, 1/10 held out to
#                score; the configs' train.valid_fraction holds 1/10 of the 9/10 out again, to validate)
#   --wsj-test   WSJ test data, e.g. data/test_eval92
#   --l2         accented sets to score, "NAME=DIR ..." (utt2score, when present, gives ratings; a DIR alone is
#                named by its last part, as flowaccent score names it; a bare list by its folder, zh/wav.scp: zh,
#                or its name less .scp, zh.scp: zh)
#   --l2-train   optional accented training sets for the DNF classes, "NAME=DIR ..."
#   --fbank-opts options for flowaccent fbank, e.g. "--allow-upsample true" (8 kHz audio) or "--channel 0"
#   --report-opts options for flowaccent report, e.g. "--tsne-frames 200" (a quicker t-SNE) or "--tsne-frames 0"
#   --ctms       optional phone alignments, "FILE ...": Kaldi CTMs keyed by the corpora's utterance ids (ali-to-phones
#                --ctm-output), or by recording (steps/get_train_ctm.sh with segments); stage 6 then ranks
#                each set's phones against native_test's (flowaccent phones) and shows them in the reports
#   --phones-opts options for flowaccent phones, e.g. "--phones lang/phones.txt" (a CTM of integer phones) or
#                "--base-phones" (AH1_B, AH0_E: AH)
# Relative paths in the corpora's wav.scp (and in --fbank-opts, --phones-opts, --report-opts) are read from where
# run.sh is called, as Kaldi reads them from where its scripts run (egs/*/s5).
# The DNF configs' classes are native (WSJ) and the --l2-train sets; the plain flows (nf_*) train on native
# only. Detection AUCs are against native_test (WSJ test speakers, unseen in training, as the accented ones).
# Stages: 0 prepare, 1 fbank + CMVN, 2 split WSJ, 3 train, 4 score, 5 rating subsets, 6 reports and the models
# side by side (exp/compare.md, exp/compare_rated.md; with --ctms, exp/CONF/phones/ too). A rerun
# skips finished stages, and is refused where the options differ from the run that made them; --stage N runs
# stages N.. again (recipes/common/stages.sh).
set -euo pipefail
CALLER=$PWD  # not an option; the corpora's paths are taken from where run.sh is called; outputs go under the recipe
RECIPE=$(realpath "$0")  # not an option; through a link too, the recipe runs in its own folder
cd "$(dirname "$RECIPE")"

stage=0  # the first stage to run (0-6)
stop_stage=100  # the last stage to run
wsj_train=  # required (above)
wsj_test=  # required (above)
l2=  # above
l2_train=  # above
configs="dnf_120 dnf_440_c400 dnf_440_c440 nf_120"  # the models to train, score and report (conf/NAME.yaml)
train_opts=  # overrides for every configuration's flowaccent train, e.g. "--train.epochs 5" (checked at start)
fbank_opts=  # above
report_opts=  # above
ctms=  # above
phones_opts=  # above
nj=4  # parallel jobs of fbank
data=data  # where the data dirs go (in the recipe's folder if relative)
exp=exp  # where the models, scores and reports go (in the recipe's folder if relative)
heldout_fraction=0.1  # the share of --wsj-train held out to score (stage 2)
rated_min=1  # stage 5 scores the accented utterances rated rated-min..rated-max again (utt2score)
rated_max=2  # (the same)

. ./path.sh
. ./cmd.sh
. ../common/parse_options.sh

log() { echo "$(date '+%F %T') (run.sh:${BASH_LINENO[0]}) $*" >&2; }
names() { for spec in $1; do echo "${spec%%=*}"; done; }
from_caller() { case $1 in /*) echo "$1" ;; *) echo "$CALLER/$1" ;; esac; }  # a path as the caller meant it
set_name() {  # a DIR by its last part; a bare list by its folder (zh/wav.scp: zh), or its name less .scp (zh.scp)
  if [ -f "$(from_caller "$1")" ]; then
    case $(basename "$1") in wav.scp) basename "$(dirname "$(realpath -ms "$(from_caller "$1")")")" ;;
      *) basename "$1" .scp ;; esac
  else basename "$1"; fi
}
same_dir() { [ "$(realpath -ms "$1")" = "$(realpath -ms "$2")" ]; }  # zh/, ../x/zh and /abs/zh alike

[ -n "$wsj_train" ] && [ -n "$wsj_test" ] || { log "--wsj-train and --wsj-test are required"; exit 1; }
wsj_train=$(from_caller "$wsj_train"); wsj_test=$(from_caller "$wsj_test")
for list in l2 l2_train; do
  resolved=
  read -ra words <<< "${!list}"
  for ((i = 0; i < ${#words[@]}; i++)); do
    spec=${words[i]}
    case $spec in *=*) name=${spec%%=*} dir=${spec#*=} ;; *) name=$(set_name "$spec") dir=$spec ;; esac
    [ -n "$dir" ] || { log "--${list/_/-} '$spec': no DIR after '$name=' (NAME=DIR)"; exit 1; }
    # flowaccent score's rule for set names, checked before any work (stage 4 refused them, after training)
    if [[ ! $name =~ ^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$ ]] || [[ $name =~ ^(figures|summary\.json|config\.yaml|report\.html|report\.md)$ ]]; then
      log "--${list/_/-} '$spec': '$name' cannot name a set (ASCII letters, digits, _ . + -, not first ., and not" \
        "figures, summary.json, config.yaml, report.html or report.md): give NAME=DIR another NAME"
      exit 1
    fi
    full=$(from_caller "$dir")  # from a folder whose path has a space: split in two, then 'no such data dir'
    # a path with whitespace given in the list: 'ja=corp x/ja' was the sets ja=corp and x/ja ('ja' used twice):
    # a path that is this one, whitespace and the start of the words after it ('corp x', 'My L2 Corpora', of
    # any whitespace)
    after="${words[*]:i+1}"
    if [[ ! $full =~ [[:space:]] ]] && [ -n "$after" ]; then
      pattern=$(printf '%s' "$full" | sed 's/[][*?\\]/\\&/g')  # its own [ * ? taken as they are
      while IFS= read -r spaced; do
        rest=$(printf '%s' "${spaced#"$full"}" | tr -s '[:space:]' ' '); rest=${rest# }
        if [[ "$after " == "$rest "* || $after == "$rest"/* ]]; then full=$spaced; break; fi
      done < <(compgen -G "${pattern}[[:space:]]*" || true)
    fi
    [[ ! $full =~ [[:space:]] ]] || { log "--${list/_/-} '$spec': $full holds whitespace, which these" \
      "space-separated lists cannot carry: give a path without (a link to the data dir)"; exit 1; }
    resolved="$resolved $name=$full"
  done
  printf -v "$list" '%s' "${resolved# }"
done
# every set is a folder $data/NAME: one name twice (or a name of the recipe's own sets: wsj_*, the scored native_*,
# stage 5's NAME_rated) would overwrite a set with another
rated_names=$(for name in $(names "$l2"); do echo "${name}_rated"; done)
# shellcheck disable=SC2046,SC2086  # the lists are split into their names on purpose
clash=$(printf '%s\n' $(names "$l2 $l2_train") $rated_names wsj_all wsj_test wsj_train wsj_heldout native_heldout \
  native_test native | sort | uniq -d | head -n 1)
[ -z "$clash" ] || { log "set name '$clash' is used twice (--l2, --l2-train, NAME_rated, wsj_*, native_heldout," \
  "native_test, and native, WSJ's class): give each set its own"; exit 1; }
for train_dir in $(for spec in $l2_train; do echo "${spec#*=}"; done); do  # scored on what it was trained on
  for spec in $l2; do
    ! same_dir "${spec#*=}" "$train_dir" || log "warning: --l2 ${spec%%=*} is also an --l2-train set: its scores" \
      "are of utterances the DNF models were trained on"
  done
done
if [ -z "${configs// /}" ]; then
  known=(conf/*.yaml); known=("${known[@]#conf/}")
  log "--configs: no configuration given (conf/: ${known[*]%.yaml})"; exit 1
fi
! same_dir "$wsj_test" "$wsj_train" || log "warning: --wsj-test is the --wsj-train data: native_test, the AUCs'" \
  "reference, is of speakers (and utterances) the models trained on"
for spec in $l2; do
  for native in "$wsj_train" "$wsj_test"; do
    ! same_dir "${spec#*=}" "$native" || log "warning: --l2 ${spec%%=*} is WSJ's data ($native): an accented set" \
      "of native speech"
  done
done
for conf in $configs; do
  [ -f "conf/$conf.yaml" ] || { log "--configs: no config '$conf' (conf/$conf.yaml)"; exit 1; }
done
# shellcheck disable=SC2086  # split into its names on purpose
twice=$(printf '%s\n' $configs | sort | uniq -d | head -n 1)
[ -z "$twice" ] || { log "--configs: '$twice' is given twice"; exit 1; }
[[ $nj =~ ^[1-9][0-9]*$ ]] || { log "--nj takes a number of jobs >= 1, not '$nj'"; exit 1; }  # used in stage 1
case " $configs " in *" dnf_"*)
  [ -n "$l2_train" ] || log "warning: no --l2-train: the DNF configurations train on one class (native), so" \
    "their class-conditional prior has no other class to tell apart and they give no llr";; esac
resolved=
for ctm in $ctms; do  # read in stage 6, after training: a wrong path is said now
  [ -f "$(from_caller "$ctm")" ] || { log "--ctms: no such file '$ctm'"; exit 1; }
  [[ ! $(from_caller "$ctm") =~ [[:space:]] ]] || { log "--ctms: $(from_caller "$ctm") holds whitespace, which this" \
    "space-separated list cannot carry: give a path without (a link to the file)"; exit 1; }
  resolved="$resolved $(from_caller "$ctm")"
done
ctms=${resolved# }
number() { n=$1 awk 'BEGIN { exit !(ENVIRON["n"] ~ /^-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$/) }'; }
for option in heldout_fraction rated_min rated_max; do  # used after training (stages 2 and 5): checked now
  number "${!option}" || { log "--${option//_/-} takes a number, not '${!option}'"; exit 1; }
done
awk "BEGIN { exit !($rated_min <= $rated_max) }" \
  || { log "--rated-min $rated_min is above --rated-max $rated_max: no rating is in that range"; exit 1; }
# stage 4 scores the held-out part: none (0), or nothing left to train on (1), would fail after stages 0-1
awk "BEGIN { exit !($heldout_fraction > 0 && $heldout_fraction < 1) }" \
  || { log "--heldout-fraction takes a fraction between 0 and 1 (both excluded), not '$heldout_fraction'"; exit 1; }
recorded_options="wsj_train wsj_test l2 l2_train configs train_opts fbank_opts data heldout_fraction rated_min rated_max"
recorded_options+=" report_opts ctms phones_opts"
# the first stage each option shapes: --stage N refuses a changed one that a stage before N used (configs only
# chooses the models a run works on: any --stage may take a few)
option_stages="fbank_opts:1 heldout_fraction:2 train_opts:3 configs:1000 rated_min:5 rated_max:5 report_opts:6"
option_stages+=" ctms:6 phones_opts:6"
last_stage=6
. ../common/stages.sh
if [ -n "$train_opts" ] && would_run 3; then  # stage 3's options, checked now: a typo was found after fbank (hours)
  for conf in $configs; do
    # shellcheck disable=SC2086
    said=$(flowaccent train --config "conf/$conf.yaml" --exp "$exp/$conf" $train_opts --check --quiet 2>&1) \
      || { echo "$said" >&2; log "--train-opts '$train_opts' does not go with conf/$conf.yaml (above)"; exit 1; }
  done
fi
classes_of() {  # classes_of CONF: its training classes as NAME=DIR, in $classes
  classes=("native=$data/wsj_train")  # the plain flows: native English only
  case $1 in nf_*) ;; *) for spec in $l2_train; do classes+=("${spec%%=*}=$data/${spec%%=*}"); done ;; esac
}

# A finished run resumed trains nothing, but --resume refuses data or options changed since it began (a new split,
# other --train-opts), and a finished run whose checkpoints/ were removed is held against its final.pt: every run
# there is checked before any trains, and (where its features are there) before --stage N removes the markers of
# the stages it redoes (a refusal changes nothing). $finished: the runs with nothing left to train.
check_runs() {
  local conf spec said status
  finished=
  for conf in $configs; do
    [ -f "$exp/$conf/checkpoints/last.pt" ] || [ -f "$exp/$conf/final.pt" ] || continue
    classes_of "$conf"
    for spec in "${classes[@]}"; do [ -f "${spec#*=}/feats.scp" ] || continue 2; done  # no features yet
    # shellcheck disable=SC2086
    said=$(flowaccent train --config "conf/$conf.yaml" --exp "$exp/$conf" "${classes[@]}" $train_opts --resume \
      --check --quiet 2>&1) || { status=$?; echo "$said" >&2; exit "$status"; }
    case $said in
      *": has nothing left to train "*)  # and final.pt written after its last checkpoint (not killed)
        [ ! "$exp/$conf/final.pt" -nt "$exp/$conf/checkpoints/last.pt" ] || finished+=" $conf" ;;
      *": holds a finished run of this config and data "*) finished+=" $conf" ;;
    esac
  done
}
recheck=  # stage 3 checks them again where a stage before it runs now (the data may change)
if would_run 3; then
  check_runs
  for k in 0 1 2; do ! would_run "$k" || recheck=1; done
fi
# a configuration a finished stage did not see (added to --configs since): the stage is skipped, so it was not
# trained (or scored, or reported), and the run said "Done", or a later stage failed on what is not there
stage_output() { case $1 in 3) echo "$exp/$2/final.pt" ;; 4) echo "$exp/$2/scores/summary.json" ;;
  6) echo "$exp/$2/report.html" ;; esac; }
for k in 3 4 6; do
  stage_done "$k" && [ "$k" -le "$stop_stage" ] || continue  # a stage that runs makes it for every one
  for conf in $configs; do
    [ -e "$(stage_output "$k" "$conf")" ] || { log "--configs: $conf has no $(stage_output "$k" "$conf") though" \
      "stage $k finished in $exp (a run of other --configs made it): give --stage $k to run it and the later stages" \
      "for $conf too (what the other configurations made is kept; the stage skips it)"; exit 1; }
  done
done
mkdir -p "$data" "$exp"
exp_dir=$(cd "$exp" && pwd)  # stage 6 runs in the caller's folder: the relative paths of its options are theirs

if should_run 0; then
  log "Stage 0: prepare data dirs under $(cd "$data" && pwd)"  # --data relative: in the recipe's folder
  for source in "$wsj_train" "$wsj_test" $(for spec in $l2 $l2_train; do echo "${spec#*=}"; done); do
    local/prepare_dir.py --check "$source"  # every input first: a wrong one replaced the sets before it
  done
  local/prepare_dir.py "$wsj_train" "$data/wsj_all" --accent native
  local/prepare_dir.py "$wsj_test" "$data/wsj_test" --accent native
  for spec in $l2 $l2_train; do
    local/prepare_dir.py "${spec#*=}" "$data/${spec%%=*}" --accent "${spec%%=*}"
  done
  mark_done 0
fi

if should_run 1; then
  log "Stage 1: fbank (flowaccent fbank's options${fbank_opts:+ and $fbank_opts}) and per-speaker CMVN stats"
  data_dir=$(cd "$data" && pwd)
  for d in wsj_all wsj_test $(names "$l2 $l2_train"); do
    # shellcheck disable=SC2086
    foreground_in "$CALLER" flowaccent fbank "$data_dir/$d" --nj "$nj" --resume $fbank_opts --quiet  # relative paths: the caller's
    flowaccent validate "$data/$d"
  done
  mark_done 1
fi

if should_run 2; then
  log "Stage 2: WSJ split by utterance: a fraction $heldout_fraction held out, the rest to train on"
  local/split_heldout.py "$data/wsj_all" "$data/wsj_train" "$data/wsj_heldout" --fraction "$heldout_fraction"
  mark_done 2
fi

if should_run 3; then
  log "Stage 3: train $configs"
  [ -z "$recheck" ] || check_runs  # a run with nothing left to train is said done and skipped
  for conf in $configs; do
    resume=; [ -f "$exp/$conf/checkpoints/last.pt" ] && resume=--resume
    if [[ " $finished " == *" $conf "* ]]; then
      log "  $conf: done already"; continue
    fi
    classes_of "$conf"
    # shellcheck disable=SC2086
    foreground $train_cmd train --config "conf/$conf.yaml" --exp "$exp/$conf" "${classes[@]}" $train_opts $resume --quiet
  done
  mark_done 3
fi

score_sets=("native_heldout=$data/wsj_heldout" "native_test=$data/wsj_test")
for name in $(names "$l2"); do score_sets+=("$name=$data/$name"); done

if should_run 4; then
  log "Stage 4: score held-out WSJ, WSJ test and the accented sets, with the GMM baseline"
  for conf in $configs; do
    log "  $conf"
    # shellcheck disable=SC2086
    foreground $score_cmd score --exp "$exp/$conf" --out "$exp/$conf/scores" "${score_sets[@]}" --reference native_test \
      --baseline gmm --quiet --resume  # a stopped stage goes on: the sets scored by this model and data stay
  done
  mark_done 4
fi

if should_run 5; then
  log "Stage 5: rating subsets (utterances rated $rated_min..$rated_max)"
  rated=()
  for name in $(names "$l2"); do
    if [ -f "$data/$name/utt2score" ]; then  # a set with no utterance in range is left out, with a word
      local/rating_subset.py "$data/$name" "$data/${name}_rated" --min "$rated_min" --max "$rated_max" --skip-empty
      if [ -d "$data/${name}_rated" ]; then rated+=("${name}_rated=$data/${name}_rated"); fi
    fi
  done
  rm -f "$exp/compare_rated.md"  # stage 6's, of the earlier rated scores
  for conf in $configs; do  # an earlier run's rated scores and report go: stage 6 would report them as these
    rm -rf "$exp/$conf/scores_rated" "$exp/$conf/rated"
    if [ ${#rated[@]} -gt 0 ]; then
      log "  $conf"
      # shellcheck disable=SC2086
      foreground $score_cmd score --exp "$exp/$conf" --out "$exp/$conf/scores_rated" "native_test=$data/wsj_test" \
        "${rated[@]}" --reference native_test --baseline gmm --quiet  # the GMM fitted in stage 4, loaded
    fi
  done
  mark_done 5
fi

if should_run 6; then
  log "Stage 6: reports"
  rm -f "$exp/compare.md" "$exp/compare_rated.md"  # as report removes its pages first: a stopped stage leaves none
  for conf in $configs; do
    phones=
    if [ -n "$ctms" ]; then  # each set's LogLL by phone, against native_test's
      # shellcheck disable=SC2086
      foreground_in "$CALLER" flowaccent phones --scores "$exp_dir/$conf/scores" --out "$exp_dir/$conf/phones" \
        $phones_opts $ctms  # relative paths of --phones-opts (--phones lang/phones.txt): the caller's
      phones="--phones $exp_dir/$conf/phones"
    fi
    # shellcheck disable=SC2086
    foreground_in "$CALLER" flowaccent report --exp "$exp_dir/$conf" --scores "$exp_dir/$conf/scores" $phones \
      $report_opts
    if [ -f "$exp/$conf/scores_rated/summary.json" ]; then  # stage 5's sets, with their own figures
      # shellcheck disable=SC2086
      foreground_in "$CALLER" flowaccent report --exp "$exp_dir/$conf" --scores "$exp_dir/$conf/scores_rated" \
        --out "$exp_dir/$conf/rated/report.html" $report_opts
    fi
  done
  # the models side by side (their rated scores too, where stage 5 made them)
  sides=(); rated_sides=()
  for conf in $configs; do
    sides+=("$conf=$exp/$conf/scores")
    if [ -f "$exp/$conf/scores_rated/summary.json" ]; then rated_sides+=("$conf=$exp/$conf/scores_rated"); fi
  done
  log "  $exp/compare.md: $configs (--configs of this run)"
  flowaccent compare "${sides[@]}" --out "$exp/compare.md"
  if [ ${#rated_sides[@]} -gt 0 ]; then flowaccent compare "${rated_sides[@]}" --out "$exp/compare_rated.md"; fi
  mark_done 6
fi
if [ -f "$exp/.done/stage6" ]; then
  log "Done: $(for c in $configs; do printf '%s ' "$exp_dir/$c/report.html"; done)$exp_dir/compare.md"
else
  log "Done: stages $stage to $stop_stage, in $exp_dir"
fi
