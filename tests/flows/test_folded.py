r"""Scoring's forward with every ActNorm folded (flows.folded): nflows' values, when it is used, its cache."""

from __future__ import annotations

import dataclasses
import gc

import pytest
import torch

from flowaccent.flows import folded, packed
from flowaccent.flows.folded import FoldedFlow, columns, fold, forward_folded
from flowaccent.flows.inplace import forward_in_place
from flowaccent.flows.packed import packed_inference
from flowaccent.flows.realnvp import ModelConfig, build_realnvp

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN")


def make_flow(dim: int, context: int = 0, blocks: int = 4, move: float = 0.2, **config) -> torch.nn.Module:
    r"""A float32 flow with ActNorm initialised, then every parameter (ActNorm's too) moved by ``move`` randn."""
    torch.manual_seed(0)
    flow = build_realnvp(ModelConfig(num_blocks=blocks, hidden=16, context_dim=context, **config), dim)
    flow(torch.randn(50, dim) * 3 + 1, torch.randn(50, context) if context else None)  # initialises ActNorm
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(move * torch.randn_like(p))
    return flow.eval()


def reference(flow, x: torch.Tensor, context: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""nflows' layers in float64."""
    with torch.no_grad():
        z, log_det = flow.double()(x.double(), None if context is None else context.double())
    flow.float()
    return z, log_det


@pytest.mark.parametrize("dim", [2, 3, 6, 7, 40])
@pytest.mark.parametrize("context", [0, 3])
@pytest.mark.parametrize("batch", [0, 1, 33])
def test_same_values_as_nflows(dim, context, batch):
    flow = make_flow(dim, context)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(batch, dim, generator=gen) * 3 + 1
    ctx = torch.randn(batch, context, generator=gen) if context else None
    want_z, want_log_det = reference(flow, x, ctx)
    before = x.clone()
    with packed_inference(flow):
        assert isinstance(fold(flow), FoldedFlow)
        z, log_det = forward_folded(flow, x, ctx)
        in_place = forward_in_place(flow, x, ctx)  # goes through the folded flow too
    torch.testing.assert_close(x, before, rtol=0, atol=0)  # the caller's frames untouched
    assert z.shape == (batch, dim) and log_det.shape == (batch,) and z.is_contiguous()
    # float32 against float64: 1.1e-5 seen at dim 40 with torch 2.9.1, whose oneDNN rounds in another order
    torch.testing.assert_close(z.double(), want_z, rtol=1e-5, atol=3e-5)
    torch.testing.assert_close(log_det.double(), want_log_det, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(in_place[0], z, rtol=0, atol=0)


def test_the_folds_cost_no_accuracy(monkeypatch):
    r"""Ten blocks, each ActNorm folded into two couplings: as close to float64 as the unfolded in-place forward,
    to within a factor of 2 (rounding in another order: either can come out closer). A flow moved little from
    its data-initialised state, as a trained one is (``|z|`` < 10 here): one with ``|z|`` in the thousands
    amplifies any rounding, both forwards' alike."""
    flow = make_flow(40, blocks=10, move=0.05)
    x = torch.randn(500, 40) * 3 + 1
    with packed_inference(flow):
        z, log_det = forward_in_place(flow, x)
        monkeypatch.setenv("FLOWACCENT_FOLD", "0")
        assert forward_folded(flow, x) is None
        unfolded_z, unfolded_log_det = forward_in_place(flow, x)
    want_z, want_log_det = reference(flow, x, None)
    scale = want_z.abs().max()

    def errors(z, log_det):
        return float((z.double() - want_z).abs().max() / scale), float((log_det.double() - want_log_det).abs().max())

    (z_err, ld_err), (unfolded_z_err, unfolded_ld_err) = errors(z, log_det), errors(unfolded_z, unfolded_log_det)
    assert z_err < 1e-5 and ld_err < 1e-3
    assert z_err <= 2 * unfolded_z_err + 1e-7 and ld_err <= 2 * unfolded_ld_err + 1e-6



def test_columns_are_a_slice_where_evenly_spaced():
    assert columns(torch.arange(0, 40, 2)) == slice(0, 39, 2)
    assert columns(torch.arange(1, 7, 2)) == slice(1, 6, 2)
    assert columns(torch.tensor([3])) == slice(3, 4, 1)
    for index in ([0, 3, 1], [4, 2, 0], [0, 1, 3]):
        assert torch.equal(columns(torch.tensor(index)), torch.tensor(index))


@pytest.mark.parametrize("dim", [6, 7])
def test_permutations_by_index_give_what_slices_give(dim):
    r"""The alternating masks' permutations are evens and odds (slices); any other (an index) takes the same
    columns."""
    flow = make_flow(dim)
    x = torch.randn(9, dim)
    with packed_inference(flow):
        by_slice = fold(flow)
        assert all(isinstance(cols, slice) for cols in by_slice.gather + by_slice.restore)

        def as_index(cols):
            return torch.arange(dim)[cols]

        by_index = dataclasses.replace(
            by_slice, gather=tuple(map(as_index, by_slice.gather)), restore=tuple(map(as_index, by_slice.restore))
        )
        before = x.clone()
        for got, want in zip(by_index.run(x), by_slice.run(x)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)
        torch.testing.assert_close(x, before, rtol=0, atol=0)


@pytest.mark.parametrize(
    "config", [{"mask": "random"}, {"norm": "batchnorm"}, {"norm": "none"}], ids=["random", "batchnorm", "no-norm"]
)
def test_other_flows_are_not_folded(config):
    flow = make_flow(6, **config)
    x = torch.randn(5, 6)
    with packed_inference(flow):
        assert fold(flow) is None
        assert forward_folded(flow, x) is None
        z, _ = forward_in_place(flow, x)  # the in-place buffer, as before
    torch.testing.assert_close(z.double(), reference(flow, x, None)[0], rtol=1e-5, atol=1e-5)


def test_not_before_actnorm_is_initialised():
    flow = build_realnvp(ModelConfig(num_blocks=2, hidden=8), 6).eval()
    with packed_inference(flow):
        assert fold(flow) is None


def test_only_float32_on_onednn_inside_the_block(monkeypatch):
    flow = make_flow(6)
    x = torch.randn(5, 6)
    assert forward_folded(flow, x) is None  # outside packed_inference
    with packed_inference(flow):
        assert forward_folded(flow, x.double()) is None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert forward_folded(flow, x) is None
        monkeypatch.setenv("FLOWACCENT_ONEDNN", "0")
        assert forward_folded(flow, x) is None
        monkeypatch.delenv("FLOWACCENT_ONEDNN")
        assert forward_folded(flow, x) is not None


def test_folded_again_when_the_weights_change_and_dropped_after_the_block():
    gc.collect()
    before = len(packed._derived)
    flow = make_flow(6)
    x = torch.randn(9, 6)
    with packed_inference(flow):
        forward_folded(flow, x)
        first = packed._derived[flow][1]
        forward_folded(flow, x)
        assert packed._derived[flow][1] is first  # nothing changed: not folded again
        norm = flow._transforms[2]
        assert type(norm).__name__ == "ActNorm"
        with torch.no_grad():
            norm.shift.add_(1.0)  # in place: a new version
        z, log_det = forward_folded(flow, x)
        assert packed._derived[flow][1] is not first
    torch.testing.assert_close(z.double(), reference(flow, x, None)[0], rtol=1e-5, atol=1e-5)
    assert len(packed._derived) == before  # every module's entry dropped on leaving the block
    assert folded.block_cached(flow, (), lambda: 1) is None
