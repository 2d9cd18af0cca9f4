r"""GradientFilter: identity forward, icefall's median-relative scaling backward (closed form)."""

from __future__ import annotations

import torch

from flowaccent.nn import GradientFilter


def test_forward_is_identity_and_backward_matches_the_formula():
    x = torch.randn(5, 3, requires_grad=True)
    w = torch.randn(3, requires_grad=True)
    fx, fw = GradientFilter(batch_dim=0, threshold=2.0)(x, w)
    assert torch.equal(fx, x) and torch.equal(fw, w)
    upstream = torch.ones(5, 3)
    upstream[4] *= 100.0  # one outlier frame
    (fx * upstream).sum().add((fw * 7).sum()).backward()
    norm = (upstream**2).mean(dim=1, keepdim=True).sqrt()  # RMS per batch element: 1,1,1,1,100
    cutoff = norm.median() * 2.0  # 2
    ratio = (cutoff + norm) / cutoff  # 1.5 x4, 51
    torch.testing.assert_close(x.grad, upstream / ratio)
    torch.testing.assert_close(w.grad, torch.full((3,), 7.0) / ratio.mean())
    assert x.grad[4, 0] < 2.0  # the outlier is damped from 100 to about 1.96


def test_batch_dim_and_no_grad_passthrough():
    x = torch.randn(2, 4, 3, requires_grad=True)
    (fx,) = GradientFilter(batch_dim=1, threshold=10.0)(x)
    fx.sum().backward()
    torch.testing.assert_close(x.grad, torch.full_like(x, 1 / 1.1))  # equal norms: ratio (10+1)/10
    plain = torch.randn(3, 2)
    assert GradientFilter()(plain)[0] is plain
