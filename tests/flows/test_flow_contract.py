r"""One contract, run over every supported flow configuration (norms, cond_dim, context)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowaccent.errors import ConfigError, FeatureError
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.packed import packed_inference
from flowaccent.flows.realnvp import ModelConfig
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig

DIM = 6
CLASSES = ("native", "zh", "ja")
CONFIGS = [
    pytest.param(norm, cond_dim, context, mask, id=f"{norm}-c{cond_dim}-ctx{context}-{mask}")
    for norm in ("actnorm", "batchnorm", "none")
    for cond_dim in (0, 4, DIM)
    for context in (0, len(CLASSES))
    for mask in ("alternating", "random")
    if mask == "alternating" or (cond_dim == 4 and context == 0)
]


def make_model(
    norm: str, cond_dim: int, context: int, mask: str, standardize: bool = True, dtype=torch.float64
) -> FlowModel:
    torch.manual_seed(0)
    features = FeaturePipelineConfig(cmvn="none", deltas=0, splice=0, standardize=standardize)
    pipeline = FeaturePipeline(features, DIM)
    if standardize:
        gen = torch.Generator().manual_seed(1)
        pipeline.fit([(torch.randn(200, DIM, generator=gen, dtype=torch.float64) * 3 + 1, None)])
    config = ModelConfig(num_blocks=3, hidden=16, num_layers=2, norm=norm, context_dim=context, mask=mask)
    model = FlowModel(pipeline, config, PriorConfig(cond_dim=cond_dim, class_var=0.5, residual_var=2.0), CLASSES)
    model = model.to(dtype)
    gen = torch.Generator().manual_seed(2)
    x = (torch.randn(64, DIM, generator=gen, dtype=torch.float64) * 3 + 1).to(dtype)
    labels = torch.arange(64) % len(CLASSES)
    model.initialize(x, labels, _context(labels, context, dtype))
    with torch.no_grad():  # make the couplings non-trivial (the last layers start at zero)
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        if norm == "batchnorm":
            model.train()
            for _ in range(3):
                model(x, labels, _context(labels, context, dtype))
    return model.eval()


def _context(labels: torch.Tensor, context: int, dtype=torch.float64) -> torch.Tensor | None:
    return torch.nn.functional.one_hot(labels, context).to(dtype) if context else None


@pytest.fixture
def batch():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(10, DIM, generator=gen, dtype=torch.float64) * 3 + 1
    return x, torch.arange(10) % len(CLASSES)


@pytest.mark.parametrize("norm,cond_dim,context,mask", CONFIGS)
def test_invertible(norm, cond_dim, context, mask, batch):
    model = make_model(norm, cond_dim, context, mask)
    x, y = batch
    ctx = _context(y, context)
    out = model(x, y, ctx)
    torch.testing.assert_close(model.inverse(out.z, ctx), x, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("norm,cond_dim,context,mask", CONFIGS)
def test_log_det_is_the_jacobian(norm, cond_dim, context, mask, batch):
    model = make_model(norm, cond_dim, context, mask)
    x, y = batch
    for i in range(3):
        ctx = _context(y[i : i + 1], context)

        def f(v, ctx=ctx, i=i):
            return model(v[None], y[i : i + 1], ctx).z[0]

        jac = torch.autograd.functional.jacobian(f, x[i])
        expected = torch.linalg.slogdet(jac).logabsdet
        torch.testing.assert_close(model(x[i : i + 1], y[i : i + 1], ctx).log_det[0], expected)


@pytest.mark.parametrize("norm,cond_dim,context,mask", CONFIGS)
def test_log_p_closed_form(norm, cond_dim, context, mask, batch):
    model = make_model(norm, cond_dim, context, mask)
    x, y = batch
    out = model(x, y, _context(y, context))
    z, means = out.z.detach().numpy(), model.prior.means.detach().numpy()

    def log_normal(v, mean, var):
        return float(np.sum(-0.5 * (v - mean) ** 2 / var - 0.5 * math.log(2 * math.pi * var)))

    for b in range(len(x)):
        per_class = [
            log_normal(z[b, :cond_dim], means[c], 0.5) + log_normal(z[b, cond_dim:], 0.0, 2.0)
            for c in range(len(CLASSES))
        ]
        assert out.log_p[b].item() == pytest.approx(per_class[y[b]], rel=1e-10)
        marginal = model.prior.log_prob(out.z[b : b + 1])[0].item()
        assert marginal == pytest.approx(np.logaddexp.reduce(per_class) - math.log(3), rel=1e-10)
    torch.testing.assert_close(out.log_ll, out.log_p + out.log_det)


@pytest.mark.parametrize("norm,cond_dim,context,mask", CONFIGS)
def test_save_load_round_trip(norm, cond_dim, context, mask, batch, tmp_path):
    model = make_model(norm, cond_dim, context, mask)
    torch.save(model.to_checkpoint(), tmp_path / "m.pt")
    loaded = FlowModel.from_checkpoint(torch.load(tmp_path / "m.pt", weights_only=False)).double().eval()
    x, y = batch
    a, b = model(x, y, _context(y, context)), loaded(x, y, _context(y, context))
    for name in ("z", "log_p", "log_det"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_a_loaded_batchnorm_flow_scores_with_its_running_statistics(batch, tmp_path):
    r"""``from_checkpoint`` (of the model's state, or of a whole training checkpoint as ``torch.load`` gives it)
    returns the model in eval mode: in training mode a BatchNorm flow scored each batch with its own statistics and
    overwrote its running ones, under ``torch.no_grad`` too (-96.76 where load_model gave -102.68)."""
    model = make_model("batchnorm", 4, 0, "alternating")
    x, y = batch
    with torch.no_grad():
        model(x, y)  # running statistics away from their start
    model.eval()
    torch.save({"model": model.to_checkpoint(), "progress": {}}, tmp_path / "final.pt")
    for state in (torch.load(tmp_path / "final.pt", weights_only=False), model.to_checkpoint()):
        loaded = FlowModel.from_checkpoint(state).double()
        assert not any(m.training for m in loaded.modules())
        before = {k: v.clone() for k, v in loaded.state_dict().items()}
        with torch.no_grad():
            got, want = loaded(x[:7], y[:7]), model(x[:7], y[:7])
        torch.testing.assert_close(got.log_ll, want.log_ll)
        assert all(torch.equal(before[k], v) for k, v in loaded.state_dict().items())


def test_a_float32_models_statistics_load_as_they_were_saved(tmp_path):
    r"""The pipeline's float64 mean and std loaded as float32 (``model.to``): final.pt's standardisation was not
    best.pt's (by up to 2.3e-7 in the std)."""
    model = make_model("none", 2, 0, "alternating")
    model.transform.float()
    model.prior.float()
    torch.save(model.to_checkpoint(), tmp_path / "m.pt")
    loaded = FlowModel.from_checkpoint(torch.load(tmp_path / "m.pt", weights_only=False))
    for name in ("mean", "std"):
        saved, got = getattr(model.pipeline, name), getattr(loaded.pipeline, name)
        assert saved.dtype == got.dtype == torch.float64 and torch.equal(saved, got), name
    assert next(loaded.transform.parameters()).dtype == torch.float32


@pytest.mark.parametrize("norm,cond_dim,context,mask", CONFIGS)
def test_eval_scores_do_not_depend_on_the_batch(norm, cond_dim, context, mask, batch):
    model = make_model(norm, cond_dim, context, mask)
    x, y = batch
    whole = model(x, y, _context(y, context))
    for i in range(len(x)):
        one = model(x[i : i + 1], y[i : i + 1], _context(y[i : i + 1], context))
        torch.testing.assert_close(one.log_ll[0], whole.log_ll[i], atol=1e-10, rtol=1e-10)


def test_zero_init_flow_is_the_identity_up_to_actnorm(batch):
    features = FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False)
    model = FlowModel(
        FeaturePipeline(features, DIM), ModelConfig(num_blocks=2, hidden=8, norm="none"), PriorConfig(), ("native",)
    ).double()
    x, _ = batch
    out = model(x)
    torch.testing.assert_close(out.z, x)
    assert torch.all(out.log_det == 0)


def test_the_scale_can_grow():
    # nflows' own affine scale is at most 1.001; ours reaches exp(clamp).
    model = FlowModel(
        FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), 2),
        ModelConfig(num_blocks=1, hidden=4, norm="none", scale_clamp=2.0),
        PriorConfig(),
        ("a",),
    )
    with torch.no_grad():
        model.transform._transforms[0].transform_net.net[-1].bias.copy_(torch.tensor([0.0, 100.0]))
    assert model(torch.zeros(1, 2)).log_det.item() == pytest.approx(2.0, abs=1e-4)


def test_config_errors():
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), DIM)
    with pytest.raises(ConfigError, match="cond_dim 7 is larger than the input dim 6"):
        FlowModel(pipeline, ModelConfig(), PriorConfig(cond_dim=7), ("a",))
    with pytest.raises(ConfigError):
        ModelConfig.from_dict({"num_blocks": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        ModelConfig.from_dict({"blocks": 10})


@pytest.mark.parametrize("norm", ["actnorm", "batchnorm"])
def test_initialising_on_too_few_or_broken_frames_is_refused_and_leaves_the_flow_as_it_was(norm):
    r"""One frame gave ActNorm NaN scales (a standard deviation of one frame) and every score after NaN, with only
    torch's warning; so did a NaN frame."""
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), DIM)
    model = FlowModel(pipeline, ModelConfig(num_blocks=2, hidden=8, norm=norm), PriorConfig(cond_dim=2), CLASSES)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    broken = torch.randn(5, DIM)
    broken[2, 1] = float("nan")
    for x, said in ((torch.randn(1, DIM), "on 1 frame"), (torch.randn(0, DIM), "on 0 frame"),
                    (broken, "on frames that are not finite")):
        with pytest.raises(FeatureError, match=f"flow: cannot initialise {said}"):
            model.initialize(x)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    model.initialize(torch.randn(2, DIM))
    assert torch.isfinite(model.eval()(torch.randn(3, DIM), 0).log_ll).all()


@pytest.mark.parametrize(("norm", "cond_dim", "context", "mask"), CONFIGS)
@pytest.mark.parametrize("standardize", [True, False])
def test_no_grad_fast_path_matches_autograd_and_keeps_the_input(norm, cond_dim, context, mask, standardize, batch):
    r"""Without gradients the flow updates one buffer in place (flows.inplace): same values, and the
    caller's frames are left as they were (also when standardisation is off and nothing copies them)."""
    model = make_model(norm, cond_dim, context, mask, standardize)
    x, labels = batch
    ctx = _context(labels, context)
    slow = model(x, labels, ctx)
    before = x.clone()
    with torch.no_grad():
        fast = model(x, labels, ctx)
    torch.testing.assert_close(x, before, rtol=0, atol=0)
    for name in ("z", "log_p", "log_det"):
        torch.testing.assert_close(getattr(fast, name), getattr(slow, name).detach())


@pytest.mark.parametrize(("norm", "cond_dim", "context", "mask"), CONFIGS)
def test_no_grad_fast_path_in_float32(norm, cond_dim, context, mask, batch):
    r"""In float32 on a CPU, in a packed_inference block (scoring), the conditioners run on oneDNN
    (flows.packed): same values to float32 rounding."""
    model = make_model(norm, cond_dim, context, mask, dtype=torch.float32)
    x, labels = batch
    x, ctx = x.float(), _context(labels, context, torch.float32)
    slow = model(x, labels, ctx)
    with torch.no_grad(), packed_inference(model):
        fast = model(x, labels, ctx)
    for name in ("z", "log_p", "log_det"):
        torch.testing.assert_close(getattr(fast, name), getattr(slow, name).detach(), rtol=1e-5, atol=1e-4)


def test_no_grad_fast_path_copies_when_the_first_layer_is_a_coupling():
    r"""With 2 features the alternating plan needs no leading permutation: the first coupling
    would write into the caller's frames unless the fast path copies them first."""
    torch.manual_seed(0)
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), 2)
    model = FlowModel(pipeline, ModelConfig(num_blocks=2, hidden=8), PriorConfig(), ("native",)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    assert type(model.transform._transforms[0]).__name__ == "SoftClampAffineCoupling"
    x = torch.randn(5, 2)
    before = x.clone()
    slow = model(x).log_ll
    with torch.no_grad():
        fast = model(x).log_ll
    torch.testing.assert_close(x, before, rtol=0, atol=0)
    torch.testing.assert_close(fast, slow.detach())


def test_every_activation_the_config_offers_is_built():
    r"""``ModelConfig.activation``'s choices (in the torch-free flowaccent.flows.config) are the conditioner's
    activations: one added to only one of them would pass the config and fail in the model, or never be offered."""
    import typing

    from flowaccent.flows.config import ModelConfig as Config
    from flowaccent.flows.coupling import ACTIVATIONS

    assert set(typing.get_args(typing.get_type_hints(Config)["activation"])) == set(ACTIVATIONS)
