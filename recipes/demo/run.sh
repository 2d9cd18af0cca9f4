#!/usr/bin/env bash
# The flowaccent demo, end to end on a synthetic accented-English corpus the toolkit makes itself:
#   0 synthesise native, Chinese- and Japanese-accented English (espeak-ng)
#   1 fbank (40 bins) + per-speaker CMVN stats
#   2 train a DNF flow on train_native + train_zh (classes native, zh) and a plain flow on train_native
#   3 score dev/test_native, test_zh and test_ja (Japanese never seen in training), GMM baseline beside
#   4 blur-mask of the DNF flow on 8 test_native + 8 test_zh utterances (4 + 4, 20 steps with --quick true)
#   5 each set's LogLL by phone (flowaccent phones) of the phones spoken and of the native reading's; plots and
#     report.html (with both phones runs, and the DNF flow's with its blur masks); RESULTS.md
# Everything goes under exp/ (exp/quick with --quick true; _seedN added for --seed N > 0: the corpus's and
# the training's seed). --report-opts: options for stage 5's flowaccent report, e.g. "--tsne-frames 0" (no t-SNE).
# A rerun skips finished stages (refused into an --exp made with another --quick, --seed or --report-opts: give
# --stage 5 for new reports); --stage N runs stages N.. again (recipes/common/stages.sh).
set -euo pipefail
RECIPE=$(realpath "$0")  # not an option; through a link too, the recipe runs in its own folder
cd "$(dirname "$RECIPE")"

stage=0  # the first stage to run (0-5)
stop_stage=100  # the last stage to run
quick=false  # true: a tiny corpus and small models, for a quick check (what CI runs)
nj=2  # parallel jobs of synth and fbank
seed=0  # the corpus's and the training's seed
exp=  # where everything goes (above)
report_opts=  # above

. ./path.sh
. ../common/parse_options.sh

log() { echo "$(date '+%F %T') (run.sh:${BASH_LINENO[0]}) $*" >&2; }
case $quick in true|false) ;; *) echo "$0: --quick takes true or false, not '$quick'" >&2; exit 1 ;; esac
seeded=; [ "$seed" = 0 ] || seeded=_seed$seed  # each seed its own default folder: a finished run is not reused
if [ "$quick" = true ]; then
  exp=${exp:-exp/quick$seeded}; num_sentences=24; dnf_conf=conf/quick.yaml; nf_conf=conf/quick.yaml
else
  exp=${exp:-exp/default$seeded}; num_sentences=0; dnf_conf=conf/dnf.yaml; nf_conf=conf/nf.yaml
fi
corpus=$exp/corpus
if [[ $(realpath -m "$corpus") =~ [[:space:]] ]]; then  # synth refused it, naming an OUT_DIR never given
  echo "$0: the corpus would go into $(realpath -m "$corpus"), whose path holds whitespace (Kaldi's wav.scp cannot" \
    "carry it): give --exp a folder whose path has none" >&2
  exit 1
fi
recorded_options="quick seed report_opts"
option_stages="report_opts:5"
last_stage=5
. ../common/stages.sh
sets="train_native dev_native test_native train_zh test_zh test_ja"

train() {  # train dnf|nf [--check]
  local name=$1 args; shift
  case $name in
    dnf) args=(--config "$dnf_conf" "native=$corpus/train_native" "zh=$corpus/train_zh") ;;
    nf) args=(--config "$nf_conf" "native=$corpus/train_native" --prior.cond-dim 0) ;;
  esac
  # A finished run resumed trains nothing, but --resume refuses data changed since it began (a new corpus); one
  # whose checkpoints/ were removed is held against its final.pt (it was counted done, of any seed or corpus).
  local resume=; [ -f "$exp/$name/checkpoints/last.pt" ] && resume=--resume
  if [ -z "$resume" ] && [ -f "$exp/$name/final.pt" ]; then
    flowaccent train --exp "$exp/$name" "${args[@]}" --train.seed "$seed" --resume --check --quiet
    return
  fi
  flowaccent train --exp "$exp/$name" "${args[@]}" --train.seed "$seed" $resume --quiet "$@"
}

if would_run 2 && [ -d "$corpus/train_native" ] && [ -d "$corpus/train_zh" ]; then
  # Stage 2 goes on from the models there, and train --resume refuses one of another --seed or --quick: both are
  # checked now, not each after stages 0 and 1 made the corpus again (the old one gone) and the other trained.
  refused=
  for model in dnf nf; do  # (features not made yet, as after a stop in stage 1: nothing to check them against)
    [ -f "$exp/$model/checkpoints/last.pt" ] || [ -f "$exp/$model/final.pt" ] || continue
    if [ ! -f "$corpus/train_native/feats.scp" ] || { [ $model = dnf ] && [ ! -f "$corpus/train_zh/feats.scp" ]; }; then
      continue
    fi
    said=$(train "$model" --check 2>&1) || refused+="$said"$'\n'
  done
  if [ -n "$refused" ]; then
    echo "$0: stage 2 would go on from the models in $exp, and flowaccent train refuses it (nothing was run):" >&2
    printf '%s' "$refused" >&2
    exit 1
  fi
fi
mkdir -p "$exp"

if should_run 0; then
  log "Stage 0: synthesise the demo corpus into $corpus"
  rm -rf "$corpus"
  sizes=; [ "$num_sentences" -gt 0 ] && sizes="--num-sentences $num_sentences"
  # shellcheck disable=SC2086
  flowaccent synth "$corpus" $sizes --seed "$seed" --nj "$nj" --quiet
  mark_done 0
fi

if should_run 1; then
  log "Stage 1: fbank and CMVN stats"
  for d in $sets; do
    flowaccent fbank "$corpus/$d" --nj "$nj" --resume --quiet
    flowaccent validate "$corpus/$d"
  done
  mark_done 1
fi

if should_run 2; then
  log "Stage 2: train the DNF flow (native, zh) and the plain flow (native)"
  train dnf
  train nf
  mark_done 2
fi

score_sets="dev_native=$corpus/dev_native test_native=$corpus/test_native test_zh=$corpus/test_zh test_ja=$corpus/test_ja"
if should_run 3; then
  log "Stage 3: score the test sets, with the diagonal-GMM baseline"
  for model in dnf nf; do
    log "  $model"  # each model's block of score lines named, as wsj_l2's are
    # shellcheck disable=SC2086
    flowaccent score --exp "$exp/$model" --out "$exp/$model/scores" $score_sets --reference test_native \
      --baseline gmm --quiet --resume  # a rerun keeps the sets already scored by this model
  done
  mark_done 3
fi

if should_run 4; then
  log "Stage 4: blur-mask of the DNF flow's LogLL on test_native and test_zh utterances"
  if [ "$quick" = true ]; then
    blur_opts="--utts 4 --steps 20 --random-seeds 2 --step 0.1"
  else
    blur_opts="--utts 8 --steps 300"
  fi
  # shellcheck disable=SC2086
  flowaccent blurmask --exp "$exp/dnf" --data "test_native=$corpus/test_native" --data "test_zh=$corpus/test_zh" \
    $blur_opts --out "$exp/dnf/blurmask" --quiet
  mark_done 4
fi

if should_run 5; then
  log "Stage 5: reports and RESULTS"
  rm -f "$exp/RESULTS.md" "$exp/compare.md"  # as a report removes its pages first: a stopped stage leaves neither
  phones_dnf='' phones_nf=''
  if [ -f "$corpus/test_native/phones.ctm" ]; then  # each set's LogLL by phone, against test_native's
    for model in dnf nf; do
      flowaccent phones --scores "$exp/$model/scores" --out "$exp/$model/phones" \
        "$corpus"/{dev_native,test_native,test_zh,test_ja}/phones.ctm
    done
    phones_dnf="--phones $exp/dnf/phones" phones_nf="--phones $exp/nf/phones"
  fi
  if [ -f "$corpus/test_native/canonical.ctm" ]; then  # the same by the native reading's phones (canonical.ctm)
    for model in dnf nf; do
      flowaccent phones --scores "$exp/$model/scores" --out "$exp/$model/phones_canonical" \
        "$corpus"/{dev_native,test_native,test_zh,test_ja}/canonical.ctm
    done
    phones_dnf+=" --phones $exp/dnf/phones_canonical" phones_nf+=" --phones $exp/nf/phones_canonical"
  fi
  if [ ! -f "$corpus/test_native/canonical.ctm" ]; then
    log "No $corpus/test_native/canonical.ctm (a corpus synthesised before flowaccent wrote it): no phones tables" \
      "of the native reading's phones; rerun from stage 0 for them"
  fi
  # shellcheck disable=SC2086
  flowaccent report --exp "$exp/dnf" --scores "$exp/dnf/scores" --blurmask "$exp/dnf/blurmask" $phones_dnf $report_opts
  # shellcheck disable=SC2086
  flowaccent report --exp "$exp/nf" --scores "$exp/nf/scores" $phones_nf $report_opts
  local/make_results.py "$exp" > "$exp/RESULTS.md"
  flowaccent compare "dnf=$exp/dnf/scores" "nf=$exp/nf/scores" --out "$exp/compare.md"  # the two side by side
  mark_done 5
fi

if [ -f "$exp/.done/stage5" ]; then
  log "Done: $exp/dnf/report.html, $exp/nf/report.html, $exp/RESULTS.md, $exp/compare.md," \
    "$exp/{dnf,nf}/phones/ and phones_canonical/"
else
  log "Done: stages $stage to $stop_stage, in $exp"
fi
