r"""The GMM baseline of ``flowaccent score --baseline gmm`` (``flowaccent.score.baseline``), on the demo corpus.

Measured side by side in one run, median of ``--repeats`` (interleaved):
  scoring   the baseline's per-utterance mean log-likelihoods of the test sets (test_native, test_zh,
            test_ja) with one fitted GMM, each utterance's features through the model's torch pipeline
            first: in torch (``DiagonalGmm.log_density``, what the command runs) against scikit-learn's
            ``score_samples`` per utterance (the code before it, kept here), and the largest difference
  commands  ``flowaccent score`` of the test sets in fresh processes: without the baseline, with it
            fitting the GMM (no kept fit), and with it loading the fit kept beside the model; with
            ``--other-tree DIR`` also another checkout's command with the baseline (``DIR`` holds its
            ``flowaccent/``), e.g. the code before (``git archive REV flowaccent | tar -x -C DIR``)
The model is a 10 x 512 flow as initialised (the baseline uses only its feature pipeline: fbank +
deltas, no CMVN) whose training data (``data.txt``) is the corpus's train_native.

Usage: python benchmarks/bench_baseline.py [--corpus DIR] [--num-sentences N] [--repeats 3]
                                           [--other-tree DIR] [--json PATH]
  --corpus: a corpus written by ``flowaccent synth`` with fbank features (default: made here, seed 0).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_model import in_turn  # noqa: E402
from bench_score import write_model  # noqa: E402
from bench_startup import timed  # noqa: E402

from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.data.datadir import load_data_dir  # noqa: E402
from flowaccent.data.stream import iter_utterances  # noqa: E402
from flowaccent.score.baseline import (  # noqa: E402
    COMPONENTS,
    FIT_OPTIONS,
    GMM_FILE,
    MAX_FRAMES,
    DiagonalGmm,
    gmm_utterance_log_ll,
    sample_frames,
)
from flowaccent.train.checkpoint import load_model  # noqa: E402

FLOWACCENT = [sys.executable, "-m", "flowaccent"]
TEST_SETS = ("test_native", "test_zh", "test_ja")


def prepare_corpus(root: Path, num_sentences: int | None) -> Path:
    r"""The demo corpus with fbank features for train_native and the test sets: synthesised and extracted here."""
    corpus = root / "corpus"
    sizes = ["--num-sentences", str(num_sentences)] if num_sentences else []
    subprocess.run([*FLOWACCENT, "synth", str(corpus), "--nj", "2", "--quiet", *sizes], check=True)
    for name in ("train_native", *TEST_SETS):
        subprocess.run([*FLOWACCENT, "fbank", str(corpus / name), "--nj", "2", "--quiet"], check=True)
    return corpus


def sklearn_utterance_log_ll(gmm, data, pipeline) -> dict[str, float]:
    r"""The code before: each utterance's features in torch, then scikit-learn's ``score_samples`` on them."""
    offset = float(pipeline.log_abs_det())
    out = {}
    for utt in iter_utterances(data, pipeline.input_dim, pipeline.config.cmvn == "spk"):
        x = pipeline(torch.from_numpy(utt.feats), utt.cmvn_stats).double().numpy()
        out[utt.utt] = float(gmm.score_samples(x).mean() + offset)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--num-sentences", type=int, help="the synthesised corpus's size (default: the demo's)")
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument("--other-tree", help="a folder with another checkout's flowaccent/ to time beside this one")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = args.corpus or prepare_corpus(root, args.num_sentences)
        exp = root / "exp"
        exp.mkdir()
        write_model(exp, blocks=10, hidden=512)
        (exp / "data.txt").write_text(f"native={corpus / 'train_native'}\n")
        pipeline = load_model(exp / "final.pt").pipeline
        sets = {name: load_data_dir(corpus / name) for name in TEST_SETS}
        frames = sample_frames([load_data_dir(corpus / "train_native")], pipeline, MAX_FRAMES, 0)
        start = time.perf_counter()
        with warnings.catch_warnings():  # its line below says whether EM converged (sklearn's warning, in the log)
            warnings.simplefilter("ignore", ConvergenceWarning)
            fitted = GaussianMixture(COMPONENTS, random_state=0, **FIT_OPTIONS).fit(frames)
        fit_seconds = time.perf_counter() - start
        ours = DiagonalGmm.from_sklearn(fitted)  # what fit_gmm returns
        scoring = {"torch": [], "sklearn": []}
        diff = 0.0
        for repeat in range(args.repeats):
            for kind in ("torch", "sklearn") if repeat % 2 == 0 else ("sklearn", "torch"):
                start = time.perf_counter()
                if kind == "torch":
                    new = {name: gmm_utterance_log_ll(ours, data, pipeline) for name, data in sets.items()}
                else:
                    old = {name: sklearn_utterance_log_ll(fitted, data, pipeline) for name, data in sets.items()}
                scoring[kind].append(time.perf_counter() - start)
            diff = max(diff, max(abs(new[n][u] - old[n][u]) for n in sets for u in new[n]))

        specs = [f"{name}={corpus / name}" for name in TEST_SETS]

        def command(baseline: bool, tree: str | None = None) -> float:
            out = root / f"scores-{time.monotonic_ns()}"
            extra = ["--baseline", "gmm"] if baseline else []
            return timed([*FLOWACCENT, "score", "--exp", str(exp), "--out", str(out), *specs, *extra, "--quiet"], tree)

        kept = exp / GMM_FILE
        # the kept fit loaded by each checkout (its folder: None for this one), each repeat in another order
        loading = {"loading": None} | ({"other tree": args.other_tree} if args.other_tree else {})
        commands: dict[str, list[float]] = {"no baseline": [], "fitting": [], **{name: [] for name in loading}}
        for r in range(args.repeats):
            commands["no baseline"].append(command(False))
            kept.unlink(missing_ok=True)
            commands["fitting"].append(command(True))
            assert kept.exists()
            for name in in_turn(loading, r):
                commands[name].append(command(True, loading[name]))
        num_frames = {name: sum(data.utt2num_frames().values()) for name, data in sets.items()}

    medians = {k: statistics.median(v) for k, v in commands.items()}
    result = {
        "fit_frames": len(frames), "fit_seconds": fit_seconds, "fit_iterations": int(fitted.n_iter_),
        "fit_converged": bool(fitted.converged_),
        "scored_frames": sum(num_frames.values()), "scored_utts": sum(len(v) for v in new.values()),
        "scoring_torch_s": statistics.median(scoring["torch"]),
        "scoring_sklearn_s": statistics.median(scoring["sklearn"]),
        "scoring_speedup": statistics.median(a / b for a, b in zip(scoring["sklearn"], scoring["torch"])),
        "max_utt_diff": diff,
        "command_s": medians,
        "baseline_s": {k: v - medians["no baseline"] for k, v in medians.items() if k != "no baseline"},
        "repeats": args.repeats,
    }
    converged = "" if result["fit_converged"] else ", not converged: the limit"
    print(f"GMM fitted on {result['fit_frames']} frames in {fit_seconds:.1f} s ({result['fit_iterations']} EM "
          f"iterations{converged}); test sets {result['scored_utts']} utterances, {result['scored_frames']} frames")
    print(f"scoring them: torch {result['scoring_torch_s']:.3f} s, sklearn per utterance "
          f"{result['scoring_sklearn_s']:.3f} s: {result['scoring_speedup']:.2f}x; largest difference {diff:.2e}")
    for name, seconds in medians.items():
        added = f", the baseline adds {result['baseline_s'][name]:.2f} s" if name != "no baseline" else ""
        print(f"flowaccent score, {name}: {seconds:.2f} s{added}")
    if args.json:
        atomic_write_json(args.json, result)
    return result


def markdown(result: dict) -> str:
    r"""The section's table for docs/performance.md."""
    lines = ["| `flowaccent score` of the test sets | seconds | the baseline adds |", "| --- | ---: | ---: |"]
    lines += [f"| {name} | {seconds:.2f} | {result['baseline_s'].get(name, 0.0):.2f} |"
              for name, seconds in result["command_s"].items()]
    lines += ["", f"The GMM ({COMPONENTS} components, diagonal) fitted on {result['fit_frames']} frames in "
              f"{result['fit_seconds']:.1f} s ({result['fit_iterations']} EM iterations). Scoring the test sets' "
              f"{result['scored_utts']} utterances ({result['scored_frames']} frames) with it: "
              f"{result['scoring_torch_s']:.3f} s in torch, {result['scoring_sklearn_s']:.3f} s with scikit-learn per "
              f"utterance (**{result['scoring_speedup']:.2f}x**), largest difference {result['max_utt_diff']:.1e} "
              "nats/frame."]
    return "\n".join(lines)


if __name__ == "__main__":
    stop_on_term()
    main()
