r"""The flow as flowaccent builds it against its peers on the same architecture, side by side in one run.

Architecture, for everyone: D in ``--dims`` (even: equal halves), 10 affine coupling blocks on
alternating halves, each conditioner an MLP of 2 hidden ReLU layers of width 512 (``D/2 -> 512 ->
512 -> D``: shift and scale for the other half), a normalisation layer after every coupling where
the library has one, a standard-normal prior. What each implementation gets:

  flowaccent  FlowModel: nflows CompositeTransform of SoftClampAffineCoupling (Conditioner MLP,
              log-scale 2 tanh(u / 2)) + nflows ActNorm; alternating even/odd features (one
              Permutation in, one out); DNFPrior(cond_dim=0), one class; in training each
              coupling and its ActNorm run as one fused autograd node (flowaccent.flows.halves)
  plain       benchmarks/plain_realnvp.py PlainRealNVP: hand-written PyTorch, contiguous halves,
              log-scale 2 tanh(u / 2), its own ActNorm (the plain reference)
  zuko        zuko.flows.RealNVP: 10 GeneralCouplingTransform (zuko.nn.MLP) with
              MonotonicAffineTransform (log-scale a / (1 + |a| / ln 1000)), checkered even/odd
              masks (index gather/scatter), NO norm layer (zuko has none), DiagNormal prior
  normflows   normflows.NormalizingFlow: AffineCouplingBlock (nets.MLP, init_zeros, scale_map
              "exp", unclamped; channel split) + Permute("swap") + ActNorm per block,
              DiagGaussian(trainable=False); scored via its log_prob (the inverse pass)

The conditioners' layer shapes (so their parameter counts) are checked equal; the norm layers
differ (printed). Measured, median of ``--repeats`` interleaved repeats (the order of the
implementations rotates each repeat), ``--steps`` timed steps each after one untimed:
  matmul  torch.mm on the conditioner layer shapes at the same batch (bench_model.time_matmul)
  train   -log p(x).mean() + backward + Adam step, model only, frames/s
  infer   eval mode, no_grad, log p(x), frames/s
A ratio is the median over repeats of (implementation / flowaccent) from the same repeat; a
share is the conditioner matmul work (for a training step 3x the forward less the first layer's input gradient,
which no implementation computes: train_flops_per_frame) per second over the
matmul rate. The process's allocator is set up as the ``flowaccent`` command sets it
(flowaccent.allocator; ``FLOWACCENT_MALLOC=system``: glibc's defaults), for every implementation
alike. zuko and normflows are optional (``pip install -e '.[bench]'``); missing ones are skipped.

Usage: python benchmarks/bench_peers.py [--dims 120 440] [--batch 10000] [--repeats 3] [--steps 3]
    [--only flowaccent zuko ...] [--json rows.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).parent))

from bench_common import count, stop_on_term  # noqa: E402
from bench_model import seconds, time_matmul  # noqa: E402
from plain_realnvp import Coupling, PlainRealNVP  # noqa: E402

from flowaccent.allocator import tune_allocator  # noqa: E402
from flowaccent.data.atomic import atomic_write_json  # noqa: E402
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig  # noqa: E402
from flowaccent.flows.config import ModelConfig  # noqa: E402
from flowaccent.flows.coupling import Conditioner  # noqa: E402
from flowaccent.flows.packed import packed_inference
from flowaccent.flows.realnvp import flops_per_frame, train_flops_per_frame  # noqa: E402
from flowaccent.model import FlowModel  # noqa: E402
from flowaccent.prior_config import PriorConfig  # noqa: E402

CONFIG = ModelConfig(num_blocks=10, hidden=512, num_layers=2, norm="actnorm")
IMPLEMENTATIONS = ("flowaccent", "plain", "zuko", "normflows")


@dataclasses.dataclass
class Impl:
    r"""One implementation under test.

    Attributes:
        name: ``flowaccent``, ``plain``, ``zuko`` or ``normflows``.
        module: holds every trainable parameter (the optimiser's, and train/eval mode).
        log_prob: ``x (B, D) -> log p(x) (B,)``.
        conditioners: the conditioner MLPs (for the parameter check).
        model: what was built, in words.
    """

    name: str
    module: nn.Module
    log_prob: Callable[[Tensor], Tensor]
    conditioners: list[nn.Module]
    model: str

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())

    @property
    def conditioner_params(self) -> int:
        return sum(p.numel() for m in self.conditioners for p in m.parameters())

    @property
    def conditioner_shapes(self) -> list[tuple[int, ...]]:
        r"""Shapes of every conditioner weight and bias, sorted (the layer structure, order aside)."""
        return sorted(tuple(p.shape) for m in self.conditioners for p in m.parameters())


def build_flowaccent(dim: int) -> Impl:
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), dim)
    model = FlowModel(pipeline, CONFIG, PriorConfig(cond_dim=0), ("all",))
    conditioners = [m for m in model.modules() if isinstance(m, Conditioner)]
    desc = "FlowModel: SoftClampAffineCoupling (log-scale 2 tanh(u/2)), even/odd + nflows ActNorm; DNFPrior"
    return Impl("flowaccent", model, lambda x: model(x).log_ll, conditioners, desc)


def build_plain(dim: int) -> Impl:
    model = PlainRealNVP(dim, CONFIG.num_blocks, CONFIG.hidden, CONFIG.num_layers, norm="actnorm")
    conditioners = [m.net for m in model.modules() if isinstance(m, Coupling)]
    return Impl(
        "plain",
        model,
        model.log_prob,
        conditioners,
        "PlainRealNVP: Coupling (log-scale 2 tanh(u/2)), contiguous halves + ActNorm",
    )


def build_zuko(dim: int) -> Impl:
    import zuko

    flow = zuko.flows.RealNVP(dim, transforms=CONFIG.num_blocks, hidden_features=[CONFIG.hidden] * CONFIG.num_layers)
    conditioners = [m for m in flow.modules() if isinstance(m, zuko.nn.MLP)]
    desc = "zuko.flows.RealNVP: MonotonicAffineTransform (log-scale a/(1+|a|/ln 1000)), checkered; NO norm"
    return Impl("zuko", flow, lambda x: flow().log_prob(x), conditioners, desc)


def build_normflows(dim: int) -> Impl:
    import normflows as nf

    half = dim // 2
    flows: list[nn.Module] = []
    for _ in range(CONFIG.num_blocks):
        net = nf.nets.MLP([half] + [CONFIG.hidden] * CONFIG.num_layers + [2 * (dim - half)], init_zeros=True)
        flows += [nf.flows.AffineCouplingBlock(net, scale_map="exp"), nf.flows.Permute(dim, mode="swap")]
        flows.append(nf.flows.ActNorm((dim,)))
    model = nf.NormalizingFlow(nf.distributions.DiagGaussian(dim, trainable=False), flows)
    conditioners = [m for m in model.modules() if isinstance(m, nf.nets.MLP)]
    desc = "normflows.NormalizingFlow: AffineCouplingBlock (exp, unclamped) + Permute swap + ActNorm"
    return Impl("normflows", model, model.log_prob, conditioners, desc)


BUILDERS = {"flowaccent": build_flowaccent, "plain": build_plain, "zuko": build_zuko, "normflows": build_normflows}


def build(name: str, dim: int, seed: int = 0) -> Impl:
    r"""One implementation for ``dim``-d frames: built, norms data-initialised, weights perturbed off the identity."""
    torch.manual_seed(seed)
    impl = BUILDERS[name](dim)
    x = torch.randn(4096, dim)
    impl.module.train()
    with torch.no_grad():
        if isinstance(impl.module, FlowModel):
            impl.module.initialize(x)
        else:
            impl.log_prob(x)  # ActNorm data initialisation on the first training batch
        for p in impl.module.parameters():  # leave the zero-initialised identity so the timing is of real work
            p.add_(0.01 * torch.randn_like(p))
        impl.module.eval()
        if not torch.isfinite(impl.log_prob(x[:256])).all():
            raise RuntimeError(f"{name}: log p(x) is not finite on standard-normal frames")
    return impl


def time_train(impl: Impl, x: Tensor, steps: int) -> float:
    r"""Frames/s of ``-log p(x).mean()`` + backward + Adam step on ``x`` ``(B, D)`` (one untimed step first)."""
    optimizer = torch.optim.Adam(impl.module.parameters(), lr=1e-5)
    impl.module.train()

    def step():
        loss = -impl.log_prob(x).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return len(x) * steps / seconds(step, steps, "cpu")


@torch.no_grad()
def time_infer(impl: Impl, x: Tensor, steps: int) -> float:
    r"""Frames/s of eval-mode ``log p(x)`` without gradients on ``x`` ``(B, D)`` (one untimed pass first)."""
    impl.module.eval()
    with packed_inference(impl.module):  # flowaccent's conditioners as `flowaccent score` runs them; no-op for peers
        return len(x) * steps / seconds(lambda: impl.log_prob(x), steps, "cpu")


def available(names: list[str]) -> list[str]:
    r"""``names`` whose library imports; prints a note for each one skipped."""
    out = []
    for name in names:
        if name in ("zuko", "normflows"):
            try:
                __import__(name)
            except ImportError:
                print(f"note: {name} is not installed, skipped (pip install -e '.[bench]')")
                continue
        out.append(name)
    return out


def measure(dim: int, batch: int, names: list[str], repeats: int, steps: int) -> list[dict]:
    r"""One row per implementation for ``dim``-d frames (flowaccent must be among ``names``)."""
    impls = [build(name, dim) for name in names]
    reference = impls[0]
    for impl in impls:
        if impl.conditioner_shapes != reference.conditioner_shapes:
            raise RuntimeError(
                f"D={dim}: {impl.name}'s conditioners ({impl.conditioner_params} parameters) are not "
                f"flowaccent's ({reference.conditioner_params}): not the same architecture"
            )
    print(f"\nD={dim}, batch {batch}: parameters (conditioner layer shapes checked equal; the rest: norm layers)")
    print(f"  {'implementation':<11} {'total':>9} {'conditioners':>13} {'other':>6}  model")
    for impl in impls:
        other = impl.params - impl.conditioner_params
        print(f"  {impl.name:<11} {impl.params:>9} {impl.conditioner_params:>13} {other:>6}  {impl.model}")

    x = torch.randn(batch, dim)
    rates: list[float] = []
    train = {impl.name: [] for impl in impls}
    infer = {impl.name: [] for impl in impls}
    for r in range(repeats):  # interleaved, so machine noise hits all alike; the order rotates
        rates.append(time_matmul(CONFIG, dim, batch, steps))
        for impl in impls[r % len(impls) :] + impls[: r % len(impls)]:
            train[impl.name].append(time_train(impl, x, steps))
            infer[impl.name].append(time_infer(impl, x, steps))
    rate = statistics.median(rates)
    fwd, step_flops = flops_per_frame(CONFIG, dim), train_flops_per_frame(CONFIG, dim)
    rows = []
    for impl in impls:
        tr, inf = train[impl.name], infer[impl.name]
        train_fps, infer_fps = statistics.median(tr), statistics.median(inf)
        rows.append(
            {
                "dim": dim,
                "batch": batch,
                "implementation": impl.name,
                "model": impl.model,
                "params": impl.params,
                "conditioner_params": impl.conditioner_params,
                "train_fps": train_fps,
                "train_ratio": statistics.median(a / b for a, b in zip(tr, train["flowaccent"])),
                "train_share": step_flops * train_fps / 1e9 / rate,
                "infer_fps": infer_fps,
                "infer_ratio": statistics.median(a / b for a, b in zip(inf, infer["flowaccent"])),
                "infer_share": fwd * infer_fps / 1e9 / rate,
                "matmul_gflops": rate,
                "repeats": repeats,
                "steps": steps,
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    r"""The rows as a markdown table (ratios: implementation / flowaccent in the same repeat; shares: of this
    benchmark's own matmul rate, the column after D)."""
    lines = [
        "| D | matmul GFLOP/s | implementation | parameters | train frames/s | vs flowaccent | train share "
        "| inference frames/s | vs flowaccent | inference share |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['dim']} | {r['matmul_gflops']:.1f} | {r['implementation']} | {r['params']} | {r['train_fps']:.0f} | "
        f"{r['train_ratio']:.2f}x | {100 * r['train_share']:.1f}% | {r['infer_fps']:.0f} | {r['infer_ratio']:.2f}x | "
        f"{100 * r['infer_share']:.1f}% |"
        for r in rows
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    r"""Runs the comparison; returns one dict per (D, implementation) (see the keys of :func:`measure`)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=count, nargs="+", default=[120, 440])
    parser.add_argument("--batch", type=count, default=10000)
    parser.add_argument("--repeats", type=count, default=3)
    parser.add_argument("--steps", type=count, default=3)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=IMPLEMENTATIONS,
        default=list(IMPLEMENTATIONS),
        help="implementations to run (flowaccent always runs: the ratios are against it)",
    )
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if any(d < 2 or d % 2 for d in args.dims):
        parser.error("--dims must be even (equal halves for every implementation)")
    if args.repeats < 1 or args.steps < 1 or args.batch < 2:
        parser.error("need --repeats >= 1, --steps >= 1 and --batch >= 2")
    tuned = tune_allocator()
    names = available(["flowaccent"] + [n for n in args.only if n != "flowaccent"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, allocator {'tuned' if tuned else 'system'}; "
        f"{CONFIG.num_blocks} blocks x hidden {CONFIG.hidden} x {CONFIG.num_layers} layers, batch {args.batch}, "
        f"median of {args.repeats} x {args.steps} steps; " + ", ".join(_version(n) for n in names)
    )
    rows = []
    for dim in args.dims:
        rows += measure(dim, args.batch, names, args.repeats, args.steps)
    print(
        f"\n{'D':>4} {'implementation':<11} {'train fr/s':>11} {'ratio':>6} {'share':>6} "
        f"{'infer fr/s':>11} {'ratio':>6} {'share':>6} {'matmul GF/s':>12}"
    )
    for row in rows:
        print(
            f"{row['dim']:>4} {row['implementation']:<11} {row['train_fps']:>11.0f} {row['train_ratio']:>5.2f}x "
            f"{100 * row['train_share']:>5.1f}% {row['infer_fps']:>11.0f} {row['infer_ratio']:>5.2f}x "
            f"{100 * row['infer_share']:>5.1f}% {row['matmul_gflops']:>12.1f}"
        )
    print(
        "ratio: implementation / flowaccent, same repeat (< 1: slower than flowaccent); "
        "share: of the matmul rate measured in the same run"
    )
    if args.json:
        atomic_write_json(args.json, rows)
    return rows


def _version(name: str) -> str:
    if name == "plain":
        return "plain (benchmarks/plain_realnvp.py)"
    if name == "flowaccent":
        return f"flowaccent {metadata.version('flowaccent')} (nflows {metadata.version('nflows')})"
    return f"{name} {metadata.version(name)}"


if __name__ == "__main__":
    stop_on_term()
    main()
