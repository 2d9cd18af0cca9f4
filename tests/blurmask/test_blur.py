r"""triangular_blur: closed-form examples of every mode, totals, identity, gradcheck, a dense reference."""

from __future__ import annotations

import re

import pytest
import torch

from flowaccent.blurmask.blur import MODES, blur_energy, kernel_mass, num_taps, triangular_blur
from flowaccent.blurmask.dense import dense_blur_energy, dense_triangular_blur
from flowaccent.errors import ConfigError


def one_hot(value: float, position: int, size: int = 5) -> torch.Tensor:
    e = torch.zeros(size, dtype=torch.float64)
    e[position] = value
    return e


@pytest.mark.parametrize(
    ("mode", "position", "expected"),
    [
        ("drop", 2, [1, 2, 3, 2, 1]),
        ("fold", 2, [1, 2, 3, 2, 1]),
        ("renorm", 2, [1, 2, 3, 2, 1]),
        ("drop", 0, [3, 2, 1, 0, 0]),
        ("fold", 0, [6, 2, 1, 0, 0]),
        ("renorm", 0, [4.5, 3, 1.5, 0, 0]),
        ("drop", 4, [0, 0, 1, 2, 3]),
        ("fold", 4, [0, 0, 1, 2, 6]),
        ("renorm", 4, [0, 0, 1.5, 3, 4.5]),
        ("drop", 1, [2, 3, 2, 1, 0]),  # one bin (the 1 on the left) falls outside
        ("fold", 1, [2, 4, 2, 1, 0]),
        ("renorm", 1, [2.25, 3.375, 2.25, 1.125, 0]),  # 9 * (2 3 2 1) / 8
    ],
)
def test_closed_form_examples(mode, position, expected):
    out = blur_energy(one_hot(9.0, position), torch.full((5,), 3.0, dtype=torch.float64), mode)
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64))


def test_the_examples_in_the_log_domain():
    x = torch.log(torch.tensor([1e-30, 1e-30, 9.0, 1e-30, 1e-30], dtype=torch.float64))
    out = triangular_blur(x, torch.full((5,), 3.0, dtype=torch.float64), "drop").exp()
    torch.testing.assert_close(out, torch.tensor([1.0, 2, 3, 2, 1], dtype=torch.float64))


def test_non_integer_width():
    # m = 2.5: weights relu(2.5 - |d|) = 0.5 1.5 2.5 1.5 0.5, sum 6.5
    out = blur_energy(one_hot(6.5, 2), torch.full((5,), 2.5, dtype=torch.float64), "drop")
    torch.testing.assert_close(out, torch.tensor([0.5, 1.5, 2.5, 1.5, 0.5], dtype=torch.float64))


@pytest.mark.parametrize("m", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("mode", MODES)
def test_identity_at_m_at_most_one(m, mode):
    energy = torch.rand(3, 6, 9, dtype=torch.float64) + 0.1
    assert torch.equal(blur_energy(energy, torch.full_like(energy, m), mode), energy)
    x = energy.log()
    torch.testing.assert_close(triangular_blur(x, torch.full_like(x, m), mode), x)


def test_totals_kept_by_fold_and_renorm_and_shrunk_by_drop():
    energy = torch.rand(4, 7, 12, dtype=torch.float64) + 0.1
    m = 1 + 8 * torch.rand_like(energy)
    total = energy.sum(-1)
    torch.testing.assert_close(blur_energy(energy, m, "fold").sum(-1), total)
    torch.testing.assert_close(blur_energy(energy, m, "renorm").sum(-1), total)
    assert (blur_energy(energy, m, "drop").sum(-1) < total).all()


def test_kernel_mass_closed_form_matches_the_sum():
    m = torch.linspace(1.0, 9.9, 90, dtype=torch.float64)
    d = torch.arange(-20, 21, dtype=torch.float64)
    explicit = torch.relu(m[:, None] - d.abs()).sum(1)
    torch.testing.assert_close(kernel_mass(m), explicit)
    torch.testing.assert_close(kernel_mass(torch.tensor([3.0, 0.2])), torch.tensor([9.0, 1.0]))


@pytest.mark.parametrize("mode", MODES)
def test_matches_the_dense_reference(mode):
    generator = torch.Generator().manual_seed(0)
    energy = torch.rand(2, 5, 16, generator=generator, dtype=torch.float64) + 0.01
    m = 0.5 + 20 * torch.rand(2, 5, 16, generator=generator, dtype=torch.float64)  # some wider than K
    torch.testing.assert_close(blur_energy(energy, m, mode), dense_blur_energy(energy, m, mode))
    spec = energy.log().requires_grad_()
    widths = m.clone().requires_grad_()
    fast = triangular_blur(spec, widths, mode)
    dense = dense_triangular_blur(spec, widths, mode)
    torch.testing.assert_close(fast, dense)
    weights = torch.randn_like(fast)
    grads = torch.autograd.grad((fast * weights).sum(), (spec, widths))
    torch.testing.assert_close(grads, torch.autograd.grad((dense * weights).sum(), (spec, widths)))


@pytest.mark.parametrize("mode", MODES)
def test_keep_the_total_form(mode):
    r"""The lab's form: neighbours receive ``x_p w / S``, the source loses what it sends. With S over
    the bins inside it is ``renorm``; with S over all bins it is ``fold``; ``drop`` is neither."""
    generator = torch.Generator().manual_seed(1)
    energy = torch.rand(6, 11, generator=generator, dtype=torch.float64) + 0.01
    m = 1 + 6 * torch.rand(6, 11, generator=generator, dtype=torch.float64)
    p = torch.arange(11, dtype=torch.float64)
    weights = torch.relu(m[:, :, None] - (p[None, :] - p[:, None]).abs())  # (T, p, i), inside bins only
    centre = m  # relu(m - 0)
    s_inside = weights.sum(-1)
    s_all = kernel_mass(m)
    for s, same in ((s_inside, "renorm"), (s_all, "fold")):
        sent = energy * (s_inside - centre) / s  # what p sends to the other bins inside
        neighbours = weights * (1 - torch.eye(11, dtype=torch.float64))
        received = torch.einsum("tp,tpi->ti", energy / s, neighbours)
        kept_total = energy - sent + received
        torch.testing.assert_close(kept_total.sum(-1), energy.sum(-1))
        close = torch.allclose(kept_total, blur_energy(energy, m, mode))
        assert close == (mode == same)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_away_from_kinks(mode):
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(3, 7, generator=generator, dtype=torch.float64, requires_grad=True)
    whole = torch.randint(1, 5, (3, 7), generator=generator).double()
    m = (whole + 0.2 + 0.6 * torch.rand(3, 7, generator=generator, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: triangular_blur(a, b, mode), (x, m))
    energy = x.detach().exp().requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: blur_energy(a, b, mode), (energy, m))


def test_gradient_reaches_m_at_the_edges():
    r"""What the lab's hand-derived gradients got wrong: the boundary terms. Autograd's gradient in
    m agrees with a central difference at each edge bin (the first and the last), for every mode."""
    x = torch.log(torch.tensor([[5.0, 1.0, 0.5, 2.0, 0.1, 3.0]], dtype=torch.float64))
    for mode in MODES:
        m = torch.tensor([[3.4, 2.3, 1.6, 2.7, 3.2, 4.4]], dtype=torch.float64, requires_grad=True)
        weights = torch.arange(1.0, 7.0, dtype=torch.float64)
        (grad,) = torch.autograd.grad((triangular_blur(x, m, mode) * weights).sum(), m)
        for edge in (0, x.shape[1] - 1):
            step = torch.zeros_like(m)
            step[0, edge] = 1e-6
            with torch.no_grad():
                plus = (triangular_blur(x, m + step, mode) * weights).sum()
                minus = (triangular_blur(x, m - step, mode) * weights).sum()
            assert abs(float(grad[0, edge]) - float((plus - minus) / 2e-6)) < 1e-6, (mode, edge)


def test_widths_far_past_the_bins_keep_the_total_or_are_refused():
    r"""renorm's mass inside was the whole kernel's less the part outside, both near m^2: float32 lost it (a total of
    10.68 for 10.5 at m = 1e6, 8.34 at 1e7, inf at 1e8); at 1e20 drop and fold gave NaN."""
    e = torch.tensor([[9.0, 0.5, 0.5, 0.5]])
    for m in (1e3, 1e6, 1e7, 1e8, 1e10, 1e17):
        widths = torch.full((1, 4), m)
        for mode in ("renorm", "fold"):
            assert float(blur_energy(e, widths, mode).sum()) == pytest.approx(10.5, rel=1e-6), (m, mode)
        flat = triangular_blur(e.log(), widths, "renorm").exp()  # flat to about 3/m: the kernel over 4 bins
        torch.testing.assert_close(flat, torch.full((1, 4), 10.5 / 4), rtol=max(4 / m, 1e-5), atol=0)
        assert float(blur_energy(e, widths, "drop").sum()) == pytest.approx(4 * 10.5 / m, rel=max(4 / m, 1e-5))
    # the bound leaves room (HEADROOM) for the gradient's sums: at it, an incoming gradient of 3 overflowed
    for dtype, said in ((torch.float32, "4.08e+17 in float32"), (torch.float64, "2.96e+152 in float64")):
        big = {torch.float32: 1e18, torch.float64: 1e153}[dtype]
        for mode in ("drop", "fold"):
            with pytest.raises(ConfigError, match=rf"widths must be at most {re.escape(said)} for '{mode}' over 4 "):
                blur_energy(e.to(dtype), torch.full((1, 4), big, dtype=dtype), mode)
            below = torch.full((1, 4), float(said.split()[0]) * 0.99, dtype=dtype, requires_grad=True)
            energy = e.to(dtype).detach().requires_grad_()
            blur_energy(energy, below, mode).backward(torch.full((1, 4), 3.0, dtype=dtype))
            assert torch.isfinite(energy.grad).all() and torch.isfinite(below.grad).all(), (dtype, mode)
        assert torch.isfinite(blur_energy(e.to(dtype), torch.full((1, 4), big, dtype=dtype), "renorm")).all()
    # float16 in float32 (the reviews: its kernel's mass overflowed at m = 180, renorm's output was all 0 at 900
    # over 80 bins, and a gradient of 3 at 179 was inf): as float32's result, in float16
    wide = torch.rand(1, 80, dtype=torch.float16)
    for mode in ("renorm", "drop", "fold"):
        for width in (179.0, 900.0, 60000.0):
            half = blur_energy(wide, torch.full((1, 80), width, dtype=torch.float16), mode)
            full = blur_energy(wide.float(), torch.full((1, 80), width), mode)
            assert half.dtype == torch.float16
            torch.testing.assert_close(half.float(), full, rtol=2e-3, atol=1e-6)
    m = torch.full((1, 4), 1e13, requires_grad=True)  # fold's gradient in m was over norm^2 (m^4): inf / inf
    (blur_energy(e, m, "fold") * torch.arange(4.0)).sum().backward()
    assert torch.isfinite(m.grad).all()


def test_cost_is_linear_in_the_width_not_quadratic_in_the_bins():
    r"""A (K, K) matrix per frame for K = 50000 would take 10 GB per frame; the shifted adds need
    a few times T * K."""
    x = torch.zeros(2, 50_000)
    m = torch.full_like(x, 2.5)
    assert num_taps(m, 50_000) == 2
    torch.testing.assert_close(triangular_blur(x, m, "fold"), x)  # fold keeps a flat spectrum flat
    torch.testing.assert_close(triangular_blur(x, m, "renorm")[:, 4:-4], x[:, 4:-4])  # edges renormalised


def test_widths_wider_than_the_spectrum_and_batches():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    m = torch.full((4, 5), 50.0, dtype=torch.float64)  # broadcast over the batch dims
    out = blur_energy(x.exp(), m, "renorm")
    torch.testing.assert_close(out, dense_blur_energy(x.exp(), m.expand_as(x), "renorm"))
    torch.testing.assert_close(out.sum(-1), x.exp().sum(-1))


def test_errors():
    with pytest.raises(ConfigError, match="unknown mode"):
        blur_energy(torch.ones(2, 3), torch.ones(2, 3), "wrap")
    with pytest.raises(ConfigError, match="finite"):
        blur_energy(torch.ones(2, 3), torch.full((2, 3), float("inf")))

