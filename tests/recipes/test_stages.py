r"""recipes/common/{parse_options,stages}.sh on a recipe of four stages that only mark themselves done: options,
``--stage``/``--stop-stage`` and the recorded options, in milliseconds (the demo and wsj_l2 tests run them too)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..conftest import recipe_env

COMMON = Path(__file__).parents[2] / "recipes" / "common"

RECIPE = """#!/usr/bin/env bash
# a recipe of stages 0..3: each says it ran and marks itself done
set -euo pipefail
RECIPE=$(realpath "$0")
cd "$(dirname "$RECIPE")"

stage=0
stop_stage=100
seed=0 # the corpus's seed
opts=
refuse=
exp=exp
label="a  # b"  # a value holding '  #' (the review: its note was cut out of it)
cmd=${cmd:-run --jobs 2}  # words, as cmd.sh's (the review: the note went into it)

. ../common/parse_options.sh

recorded_options="seed opts"
option_stages="opts:2"
last_stage=3
. ../common/stages.sh
if [ -n "$refuse" ] && { [ "$refuse" = always ] || would_run "$refuse"; }; then
  echo "refused: stage $refuse would run" >&2; exit 1
fi
for n in 0 1 2 3; do
  if should_run $n; then echo "Stage $n" >&2; mark_done $n; fi
done
"""


def make_recipe(tmp_path: Path) -> Path:
    folder = tmp_path / "recipes" / "fake"
    folder.mkdir(parents=True)
    shutil.copytree(COMMON, tmp_path / "recipes" / "common")
    (folder / "run.sh").write_text(RECIPE)
    (folder / "run.sh").chmod(0o755)
    return folder / "run.sh"


def run(script: Path, *args: str) -> tuple[int, list[str], str]:
    r"""``(status, the stages run, stderr)``."""
    done = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60)
    return done.returncode, [line for line in done.stderr.splitlines() if line.startswith("Stage")], done.stderr


def test_only_the_scripts_own_variables_are_options_and_a_missing_value_is_named(tmp_path):
    r"""--given-options stage (parse_options.sh's own variable) made a plain rerun a --stage 0, every marker
    removed; --quick --stop-stage 0 said "unexpected argument '0'"."""
    script = make_recipe(tmp_path)
    assert run(script)[:2] == (0, ["Stage 0", "Stage 1", "Stage 2", "Stage 3"])
    for args, message in ((["--given-options", "stage"], "unknown option --given-options (the options: "),
                          (["--recorded-options", "x"], "unknown option --recorded-options"),
                          (["--RECIPE", "x"], "unknown option --RECIPE"),
                          (["--seed", "--stop-stage", "0"], "--seed needs a value (got the option --stop-stage)"),
                          (["--seed"], "option --seed needs a value")):
        status, stages, err = run(script, *args)
        assert (status, stages) == (1, []) and message in err, (args, err)
    assert run(script, "--opts", "--not-an-option 3", "--stage", "2")[:2] == (0, ["Stage 2", "Stage 3"])  # a value
    shown = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=60).stderr
    lines = shown.splitlines()  # what the recipe does (its opening comment), then each option with its note
    assert lines[1:3] == ["a recipe of stages 0..3: each says it ran and marks itself done", "options:"]
    assert [line.split()[0] for line in lines[3:]] == ["--stage", "--stop-stage", "--seed", "--opts", "--refuse",
                                                       "--exp", "--label", "--cmd"]
    assert "  --seed (default: 0)  the corpus's seed" in lines and "  --opts (default: )" in lines  # one space too
    assert """  --label (default: "a  # b")  a value holding '  #' (the review: its note was cut out of it)""" in lines
    assert "  --cmd (default: run --jobs 2)  words, as cmd.sh's (the review: the note went into it)" in lines
    link = tmp_path / "link.sh"  # through a link: ./path.sh and ../common were looked for beside the link
    link.symlink_to(script)
    assert run(link, "--stage", "3", "--opts", "--not-an-option 3")[:2] == (0, ["Stage 3"])


def test_stage_numbers_that_would_skip_unfinished_stages_or_run_nothing_are_refused(tmp_path):
    r"""--stage 4 --stop-stage 3 removed the markers of finished stages and ran nothing; --stage 3 after a stage 2
    that failed scored the old models on a new corpus."""
    script = make_recipe(tmp_path)
    assert run(script, "--stop-stage", "1")[:2] == (0, ["Stage 0", "Stage 1"])
    status, stages, err = run(script, "--stage", "3")
    assert (status, stages) == (1, []) and "--stage 3: stage 2 has not finished in exp (no exp/.done/stage2); give " \
        "--stage 2" in err
    status, stages, err = run(script, "--stage", "3", "--stop-stage", "2")
    assert (status, stages) == (1, []) and "--stage 3 is past --stop-stage 2: no stage to run" in err
    assert sorted(p.name for p in (script.parent / "exp" / ".done").iterdir()) == ["options", "stage0", "stage1"]
    assert run(script, "--stage", "1")[:2] == (0, ["Stage 1", "Stage 2", "Stage 3"])
    for past in ("4", "7"):  # it ran nothing, and the demo said "Done: ..." (--stage 7 asked for a stage 6 first)
        status, stages, err = run(script, "--stage", past)
        assert (status, stages, err) == (1, [], f"{script}: --stage {past}: this recipe's stages are 0 to 3\n")
    assert len(list((script.parent / "exp" / ".done").glob("stage*"))) == 4


def test_a_command_the_recipe_refuses_after_its_stage_checks_leaves_the_markers(tmp_path):
    r"""--stage N removed the markers of N on before the recipe's own checks (wsj_l2's --train-opts and --configs):
    a refused command had the next plain rerun redo stages 3-6 (hours of training)."""
    script = make_recipe(tmp_path)
    done = script.parent / "exp" / ".done"
    assert run(script)[:2] == (0, ["Stage 0", "Stage 1", "Stage 2", "Stage 3"])
    status, stages, err = run(script, "--stage", "2", "--refuse", "3")  # its check sees stage 3 as to be redone
    assert (status, stages) == (1, []) and "refused: stage 3 would run" in err
    assert sorted(p.name for p in done.glob("stage*")) == ["stage0", "stage1", "stage2", "stage3"]
    assert run(script) == (0, [], f"{script}: stages 0 to 3 have finished in exp (exp/.done); nothing to run "
                                  "(--stage N runs stage N and the later ones again)\n")  # it said nothing
    assert run(script, "--refuse", "3")[:2] == (0, [])  # done: not run, so not refused
    assert run(script, "--refuse", "always") == (1, [], "refused: stage always would run\n")  # not 'nothing to run'

    assert run(script, "--stage", "2", "--stop-stage", "2")[:2] == (0, ["Stage 2"])  # then stage 3's marker goes
    assert sorted(p.name for p in done.glob("stage*")) == ["stage0", "stage1", "stage2"]
    assert run(script) == (0, ["Stage 3"], f"{script}: stages 0 to 2 have finished in exp (exp/.done): skipped "
                                           "(--stage N runs stage N and the later ones again)\nStage 3\n")  # unsaid


def test_an_option_no_finished_stage_used_may_change(tmp_path):
    r"""--opts changed after stages 0-1 (it shapes stage 2 on) was refused ('a rerun would skip the stages they
    made'), and the advised --stage 2 ran on stages not finished."""
    script = make_recipe(tmp_path)
    assert run(script, "--stop-stage", "1")[:2] == (0, ["Stage 0", "Stage 1"])
    assert run(script, "--opts", "new")[:2] == (0, ["Stage 2", "Stage 3"])
    assert "opts=new" in (script.parent / "exp" / ".done" / "options").read_text()
    status, stages, err = run(script, "--opts", "newer")  # now stage 2 has used it
    assert (status, stages) == (1, []) and "was made with other options (opts) than these" in err
    assert "(the old values: exp/.done/options; --opts 'new' (now 'newer'))" in err  # the values were not said
    status, stages, err = run(script, "--seed", "3", "--opts", "new")  # stage 0's on: refused, as before
    assert status == 1 and "was made with other options (seed) than these" in err
    assert run(script, "--stage", "2", "--opts", "newer")[:2] == (0, ["Stage 2", "Stage 3"])


def test_paths_with_whitespace_are_refused_at_start_naming_what_to_change(tmp_path):
    r"""The demo in a folder whose path has a space: synth's error named an OUT_DIR never given; wsj_l2's relative
    --l2 from such a folder: split at the space, then 'no such data dir' of half the path."""
    recipes = Path(__file__).parents[2] / "recipes"
    spaced = tmp_path / "my data"
    spaced.mkdir()
    demo = subprocess.run(["bash", str(recipes / "demo" / "run.sh"), "--quick", "true", "--exp", str(spaced / "e")],
                          capture_output=True, text=True, timeout=60, env=recipe_env())
    assert demo.returncode == 1 and f"the corpus would go into {spaced / 'e' / 'corpus'}, whose path holds " \
        "whitespace (Kaldi's wav.scp cannot carry it): give --exp a folder whose path has none" in demo.stderr
    assert not (spaced / "e").exists()
    wsj = subprocess.run(["bash", str(recipes / "wsj_l2" / "run.sh"), "--wsj-train", "a", "--wsj-test", "b", "--l2",
                          "zh", "--exp", str(tmp_path / "exp"), "--data", str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=60, cwd=spaced, env=recipe_env())
    assert wsj.returncode == 1 and f"--l2 'zh': {spaced / 'zh'} holds whitespace, which these space-separated lists " \
        "cannot carry" in wsj.stderr
    assert not (tmp_path / "exp").exists() and not (tmp_path / "data").exists()
    # a path with a space given in the list itself: 'set name ja is used twice', or 'no such data dir' of half of it
    # once stage 0 had begun
    # (the review: also where the path's first part is a folder too, and at two spaces or a tab)
    (spaced / "ja").mkdir()
    (tmp_path / "my").mkdir()
    (tmp_path / "two  spaces").mkdir()
    (tmp_path / "a\ttab").mkdir()
    (tmp_path / "set[1] x" / "ja").mkdir(parents=True)  # its '[1]' not a pattern
    (tmp_path / "My L2 Corpora" / "ja").mkdir(parents=True)  # more than one space (the third review)
    for given, first, path in ((f"ja={spaced}/ja", f"ja={tmp_path}/my", spaced),
                               (f"ja={tmp_path}/set[1] x/ja", f"ja={tmp_path}/set[1]", tmp_path / "set[1] x"),
                               (f"zh={tmp_path}/My L2 Corpora/ja", f"zh={tmp_path}/My", tmp_path / "My L2 Corpora"),
                               (f"x={spaced}/ja zh=a", f"x={tmp_path}/my", spaced),
                               (f"{spaced}/ja", f"{tmp_path}/my", spaced),
                               (f"ja={tmp_path}/two  spaces", f"ja={tmp_path}/two", tmp_path / "two  spaces"),
                               (f"ja={tmp_path}/a\ttab", f"ja={tmp_path}/a", tmp_path / "a\ttab")):
        wsj = subprocess.run(["bash", str(recipes / "wsj_l2" / "run.sh"), "--wsj-train", "a", "--wsj-test", "b", "--l2",
                              given, "--exp", str(tmp_path / "exp"), "--data", str(tmp_path / "data")],
                             capture_output=True, text=True, timeout=60, cwd=tmp_path, env=recipe_env())
        said = f"--l2 '{first}': {path} holds whitespace, which these space-separated lists"
        assert wsj.returncode == 1 and said in wsj.stderr, (given, wsj.stderr)
    # a set beside a folder of its name, a space and more ('ja old'): its own, not refused (the review)
    (tmp_path / "ja old").mkdir()
    (tmp_path / "ja").mkdir()
    for given in (f"ja={tmp_path}/ja", f"zh={tmp_path}/my ja={tmp_path}/ja", f"ja={tmp_path}/ja zh={tmp_path}/zhh"):
        wsj = subprocess.run(["bash", str(recipes / "wsj_l2" / "run.sh"), "--wsj-train", "a", "--wsj-test", "b", "--l2",
                              given, "--exp", str(tmp_path / "exp"), "--data", str(tmp_path / "data"), "--stop-stage",
                              "0"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=recipe_env())
        assert "holds whitespace" not in wsj.stderr and "no such data dir or wav.scp list" in wsj.stderr, given
