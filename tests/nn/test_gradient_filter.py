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


def test_the_models_filter_scales_the_class_means_gradient_too():
    r"""With ``filter_threshold`` the class means' gradient came from every frame unfiltered (an outlier frame
    pulled them at full strength while its gradient to the latents was damped); it is now scaled by the
    filter's mean ratio over the frames, as the parameters passed along are (icefall's rule)."""
    from flowaccent.features import FeaturePipelineConfig
    from flowaccent.flows.realnvp import ModelConfig
    from flowaccent.model import build_model
    from flowaccent.prior import PriorConfig

    torch.manual_seed(0)
    features = FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False)
    model = build_model(features, 6, ModelConfig(num_blocks=2, hidden=8), PriorConfig(cond_dim=3), ("a", "b"))
    x, labels = torch.randn(64, 6), torch.arange(64) % 2
    x[5] *= 1e4  # one outlier frame

    def means_grad(threshold):
        model.zero_grad()
        out = model(x, labels, None, threshold)
        (-out.log_p.mean()).backward()
        return model.prior.means.grad.clone()

    threshold = 2.0
    plain, filtered = means_grad(None), means_grad(threshold)
    with torch.no_grad():  # the gradient reaching z per frame, by hand: (c - mu_y, r) / B (unit variances)
        z = model(x, labels).z
        upstream = torch.cat([z[:, :3] - model.prior.means[labels], z[:, 3:]], 1) / len(z)
        norm = (upstream**2).mean(1).sqrt()
        cutoff = norm.median() * threshold
        ratio = ((cutoff + norm) / cutoff).mean()
    torch.testing.assert_close(filtered, plain / ratio)
    assert ratio > 1.5  # the outlier frame's gradient, far above the median, weighs on it
