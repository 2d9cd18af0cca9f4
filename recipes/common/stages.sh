# Stage bookkeeping for recipes (source it after parse_options.sh, once $exp is set). As in Kaldi,
# `--stage N --stop-stage M` runs stages N..M. Each finished stage leaves $exp/.done/stageK, so a
# rerun without --stage skips what finished and goes on where the last run stopped; an explicit
# --stage N (N > 0) runs stages N..M again, finished or not: their markers are removed first.
if [ "$stage" -gt 0 ] && [ -d "$exp/.done" ]; then
  for done_marker in "$exp"/.done/stage*; do
    n=${done_marker##*/stage}
    if [ -f "$done_marker" ] && [ "$n" -ge "$stage" ] && [ "$n" -le "$stop_stage" ]; then rm -f "$done_marker"; fi
  done
  unset done_marker n
fi
should_run() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ] && [ ! -f "$exp/.done/stage$1" ]; }
mark_done() { mkdir -p "$exp/.done"; touch "$exp/.done/stage$1"; }
