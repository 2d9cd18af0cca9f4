r"""flowaccent's ActNorm against nflows': values, initialisation, and its host-side answer to
"initialised?" (reading the flag on a GPU made the host wait for the GPU at every forward)."""

from __future__ import annotations

import pytest
import torch
from nflows.transforms.normalization import ActNorm as NflowsActNorm

from flowaccent.flows.norm import ActNorm, is_initialized


def pair(features: int = 6) -> tuple[ActNorm, NflowsActNorm]:
    ours, theirs = ActNorm(features), NflowsActNorm(features)
    x = torch.randn(40, features, generator=torch.Generator().manual_seed(0)) * 3 + 1
    ours(x), theirs(x)  # training mode: each initialises from this batch
    return ours, theirs


def test_the_same_initialisation_and_values_as_nflows():
    ours, theirs = pair()
    assert ours.is_initialized() and bool(theirs.initialized)
    torch.testing.assert_close(ours.state_dict(), theirs.state_dict(), rtol=0, atol=0)
    x = torch.randn(9, 6, requires_grad=True)
    for train in (True, False):
        ours.train(train), theirs.train(train)
        (y, log_det), (y2, log_det2) = ours(x), theirs(x)
        assert torch.equal(y, y2) and torch.equal(log_det, log_det2)
        g, g2 = torch.autograd.grad((y.sum() + log_det.sum()), x), torch.autograd.grad((y2.sum() + log_det2.sum()), x)
        assert torch.equal(g[0], g2[0])


def test_the_start_is_written_where_the_buffers_are():
    r"""The start is written into the parameters and buffers in place, on their device. nflows set the flag to a new
    CPU tensor: on a GPU the buffer moved to the CPU (DDP's broadcast over nccl, which has no CPU backend, could
    not start a multi-GPU run); a meta-device ActNorm (not CPU, as a GPU's) refused it."""
    norm = ActNorm(4)
    storage = {name: t.untyped_storage().data_ptr() for name, t in norm.state_dict(keep_vars=True).items()}
    norm(torch.randn(8, 4))
    assert norm.is_initialized()
    assert storage == {name: t.untyped_storage().data_ptr() for name, t in norm.state_dict(keep_vars=True).items()}
    meta = ActNorm(4).to("meta")
    meta._initialize(torch.randn(8, 4, device="meta"))
    assert {t.device.type for t in meta.state_dict().values()} == {"meta"}


def test_a_dimension_constant_in_the_first_batch_starts_finite():
    r"""Its spread 0 made log_scale inf and the first loss nan (empty mel bins of upsampled 8 kHz audio are constant
    after standardisation); it is centred, not scaled, as the standardisation leaves it (floored at 1e-5, its scale
    of 1e5 magnified what the couplings later put into it), and the other dims keep nflows' start."""
    ours, theirs = ActNorm(4), NflowsActNorm(4)
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0)) * 3 + 1
    x[:, 2] = -15.94
    (y, log_det), _ = ours(x), theirs(x)
    assert torch.isfinite(y).all() and torch.isfinite(log_det).all() and not torch.isfinite(theirs.log_scale[2])
    keep = [0, 1, 3]
    torch.testing.assert_close(ours.log_scale[keep], theirs.log_scale[keep], rtol=0, atol=0)
    torch.testing.assert_close(ours.shift[keep], theirs.shift[keep], rtol=0, atol=0)
    assert ours.log_scale[2].item() == 0 and ours.shift[2].item() == pytest.approx(15.94, rel=1e-6)


def test_initialised_is_remembered_on_the_host_until_a_state_is_loaded():
    ours, theirs = pair()
    state = ours.state_dict()
    assert ours.is_initialized()  # read once (the next training forward would read it)
    # from here on the flag is not read again: a changed buffer goes unseen (on a GPU, reading it drains the queue)
    ours._buffers["initialized"] = torch.tensor(False)
    assert ours.is_initialized() and is_initialized(ours)
    shift = ours.shift.clone()
    ours(torch.randn(40, 6))  # training forward: no re-initialisation from this batch
    assert torch.equal(ours.shift, shift)
    fresh = ActNorm(6)
    ours.load_state_dict(fresh.state_dict())  # an uninitialised state: asked again, and the next batch initialises
    assert not ours.is_initialized()
    ours(torch.randn(40, 6))
    assert ours.is_initialized() and not torch.equal(ours.shift, fresh.shift)
    ours.load_state_dict(state)
    assert ours.is_initialized() and torch.equal(ours.shift, state["shift"])
    assert is_initialized(theirs) and not is_initialized(NflowsActNorm(6))
