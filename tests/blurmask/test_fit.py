r"""fit_blur_mask: a target reading a known region gets small widths there; options; the noise variant."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from flowaccent.blurmask.evaluate import deletion_curves, remove
from flowaccent.blurmask.fit import BlurMaskConfig, _roughness, fit_blur_mask, fit_noise_mask, perturb
from flowaccent.errors import ConfigError, FeatureError

T, K = 24, 32
FRAMES, BINS = slice(8, 16), slice(12, 18)


def region() -> torch.Tensor:
    inside = torch.zeros(T, K, dtype=torch.bool)
    inside[FRAMES, BINS] = True
    return inside


def ridges(seed: int = 0) -> torch.Tensor:
    r"""A log spectrogram with sloping ridges (formant-like structure) and a little noise ``(T, K)``."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(T)[:, None]
    k = torch.arange(K)[None]
    return 5 + 2 * torch.sin(2 * math.pi * k / 6 + t / 3) + 0.3 * torch.randn(T, K, generator=generator)


def band_target():
    r"""A model that reads only frames 8-15 and bins 12-17: a fixed linear map of those log energies."""
    weights = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    return lambda x: x[FRAMES, BINS] * weights


@pytest.fixture(scope="module")
def band_fit():
    x, target = ridges(), band_target()
    return x, target, fit_blur_mask(target, x, lam=0.01, steps=150)


def test_widths_are_small_where_the_target_reads(band_fit):
    x, _, result = band_fit
    m = result.m
    assert m.shape == (T, K)
    auroc = roc_auc_score(region().flatten().numpy(), -m.flatten().numpy())
    assert auroc >= 0.9, auroc
    far = torch.ones(T, K, dtype=torch.bool)
    far[4:20] = False  # frames the target never sees, nor their neighbours
    assert m[far].min() > 9.0  # pushed to m_max = 10 by the entropy term
    assert result.invariance_error < 1e-3
    assert len(result.loss) == len(result.invariance) == 150 and result.loss[-1] < result.loss[0]


@pytest.mark.parametrize("baseline", ["floor", "mean", "blur"])
def test_removing_the_lowest_m_cells_changes_far_more_than_the_highest(band_fit, baseline):
    x, target, result = band_fit
    reference = target(x)

    def change(order: str) -> float:
        removed = remove(x, result.m, 0.5, order, baseline)  # blur: the kept cells keep their widths m by default
        return float((target(removed) - reference).square().mean().sqrt())  # RMS, as the docs' "20 times"

    assert change("low") > 20 * change("high")
    curves = deletion_curves(target, x, result.m, baseline)
    assert curves.srg > 0.5 and curves.auc["low"] > curves.auc["random"] > curves.auc["high"]


def test_a_fit_under_a_callers_no_grad_or_inference_mode():
    r"""``torch.autograd.grad`` under a caller's ``no_grad`` failed ('element 0 of tensors does not require grad')."""
    x = ridges()
    expected = fit_blur_mask(lambda s: s[3:6, 2:5].sum(), x, steps=5).m
    with torch.no_grad():
        torch.testing.assert_close(fit_blur_mask(lambda s: s[3:6, 2:5].sum(), x, steps=5).m, expected)
    with torch.inference_mode():
        torch.testing.assert_close(fit_blur_mask(lambda s: s[3:6, 2:5].sum(), ridges(), steps=5).m, expected)


def test_noise_variant_finds_the_region():
    x, target = ridges(), band_target()
    result = fit_noise_mask(target, x, lam=0.1, steps=100)
    assert result.config.variant == "noise"
    sigma = result.m
    assert ((sigma >= 0.01) & (sigma <= 3.0)).all()
    assert roc_auc_score(region().flatten().numpy(), -sigma.flatten().numpy()) >= 0.95


def test_the_noise_is_drawn_on_the_cpu_and_moved_to_the_spectrum():
    r"""Same draws for a seed wherever the spectrum is; a spectrum elsewhere ("meta": a mix of devices is an error
    there, as on a GPU) gets its noise there."""
    config = BlurMaskConfig(variant="noise")
    x, sigma = ridges(), torch.full((T, K), 0.5)
    once = perturb(x, sigma, config, torch.Generator().manual_seed(3))
    torch.testing.assert_close(once, perturb(x, sigma, config, torch.Generator().manual_seed(3)))
    assert perturb(x.to("meta"), sigma.to("meta"), config, torch.Generator().manual_seed(3)).device.type == "meta"


def test_lambda_on_either_term_is_nearly_the_same_fit_under_adam():
    r"""``inv - lam H`` and ``(1 / lam) inv - H`` differ by a factor; Adam's steps do not see it
    (but for its ``eps``, hence the 2%)."""
    x, target = ridges(), band_target()
    a = fit_blur_mask(target, x, lam=0.1, lam_on="entropy", steps=30)
    b = fit_blur_mask(target, x, lam=10.0, lam_on="invariance", steps=30)
    torch.testing.assert_close(a.m, b.m, atol=0, rtol=0.02)
    np.testing.assert_allclose(b.loss, a.loss / 0.1, rtol=0.02)


@pytest.mark.parametrize(
    "fields",
    [
        {"optimizer": "sgd", "lr": 5.0},
        {"gradient_filter": True},
        {"mode": "drop"},
        {"mode": "fold"},
        {"m_min": 1.5, "m_max": 4.0},
    ],
)
def test_options_keep_m_in_bounds_and_lower_the_loss(fields):
    r"""Each option reaches the fit (another mask than the defaults' from the same start: an option the fit ignored
    passed), keeps the mask in its bounds and lowers the loss. The target reads the lowest bins too, where the
    blur's ``mode`` (how it treats the edges) matters."""
    x, band = ridges(), band_target()
    edge = torch.randn(8, 3, generator=torch.Generator().manual_seed(2))

    def target(v):
        return torch.cat([band(v), v[FRAMES, :3] * edge], dim=1)

    result = fit_blur_mask(target, x, BlurMaskConfig(steps=25, lam=0.01), **fields)
    lo, hi = result.config.bounds
    assert ((result.m >= lo) & (result.m <= hi)).all()
    assert result.loss[-1] < result.loss[0]
    for key, value in fields.items():
        assert getattr(result.config, key) == value
    default = fit_blur_mask(target, x, BlurMaskConfig(steps=25, lam=0.01))
    assert (result.m - default.m).abs().max() > 1e-3 * default.m.abs().max()


def test_smoothness_penalty_makes_the_mask_smoother():
    x, target = ridges(), band_target()
    rough = fit_blur_mask(target, x, lam=0.01, steps=60)
    smooth = fit_blur_mask(target, x, lam=0.01, steps=60, smooth=1.0)
    assert _roughness(smooth.m.log()) < 0.5 * _roughness(rough.m.log())


def test_targets_of_any_output_shape_and_a_scalar():
    x = ridges()
    result = fit_blur_mask(lambda v: v[FRAMES, BINS].exp().sum(), x, steps=10)
    assert result.m.shape == (T, K) and math.isfinite(result.invariance_error)


def test_progress_is_told_after_every_step_and_changes_nothing():
    x, target = ridges(), band_target()
    told = {"blur": [], "noise": []}
    plain = fit_blur_mask(target, x, steps=4)
    told_fit = fit_blur_mask(target, x, steps=4, progress=lambda i, n: told["blur"].append((i, n)))
    fit_noise_mask(target, x, steps=3, progress=lambda i, n: told["noise"].append((i, n)))
    assert told == {"blur": [(1, 4), (2, 4), (3, 4), (4, 4)], "noise": [(1, 3), (2, 3), (3, 3)]}
    torch.testing.assert_close(told_fit.m, plain.m, rtol=0, atol=0)


def test_config_errors():
    with pytest.raises(ConfigError, match="m_min"):
        BlurMaskConfig(m_min=0.5)
    with pytest.raises(ConfigError, match="unknown key"):
        fit_blur_mask(band_target(), ridges(), lambda_=0.1)
    with pytest.raises(ConfigError, match="init_fraction"):
        BlurMaskConfig(init_fraction=1.0)
    with pytest.raises(FeatureError, match=r"\(T, K\)"):
        fit_blur_mask(band_target(), torch.zeros(3, 4, 5))


@pytest.mark.parametrize("field, value, message", [
    ("sigma_max", math.inf, "sigma_max must be a finite number, got inf"),
    ("lr", math.inf, "lr must be a finite number"),
    ("lr", math.nan, "lr must be a finite number"),
    ("lam", math.nan, "lam must be a finite number"),
    ("smooth", math.inf, "smooth must be a finite number"),
    ("m_max", math.inf, "m_max must be a finite number"),
    ("gradient_filter_threshold", math.nan, "gradient_filter_threshold must be a finite number"),
    ("steps", 0, "steps must be >= 1, got 0"),
    ("seed", -1, r"seed must be in \[0, 2\*\*63\), got -1"),  # was accepted; score and train refuse it
    ("seed", 10**20, r"seed must be in \[0, 2\*\*63\), got 100000000000000000000"),  # a traceback from torch
    # past float32's range: a traceback from Adam's step ('cannot be converted to type float without overflow')
    ("lr", 1e39, r"lr must be at most 3.403e\+38 \(float32's largest, as the model's numbers are\), got 1e\+39"),
    ("lam", 1e300, "lam must be at most 3.403e"),
    # finite, yet the flow's output overflowed at 1e12: NaN masks with exit 0
    ("sigma_max", 1e12, r"sigma_max must be <= 1000 \(log-energy units: a noise far wider than a log filterbank's "
     r"range\), got 1e\+12"),
    ("m_max", 1e5, "m_max must be <= 1000 bins"),
])
def test_options_out_of_range_are_refused_when_read(field, value, message):
    r"""nan and inf passed every comparison (--sigma-max inf fitted NaN masks with exit 0; --lam nan failed during
    the fit, blaming the data); --steps 0 left every cell at the start's width, so the curves of every order
    were the same."""
    with pytest.raises(ConfigError, match=f"blur mask: {message}"):
        BlurMaskConfig(**{field: value})


def test_a_loss_that_overflows_stops_the_fit():
    r"""A target whose output overflows under the perturbation: NaN widths came out, and every number after them."""
    with pytest.raises(FeatureError, match=r"blur mask: the fit's loss is (inf|nan) at step 1: the target's output "
                                           r"overflowed under the perturbation"):
        fit_blur_mask(lambda x: (x * 1e30).exp().sum(), torch.ones(4, 6), steps=3, variant="noise")
    # the weights of the loss's terms past float32's range: the same words blamed m_max and sigma_max, not given
    with pytest.raises(FeatureError, match=r"blur mask: the fit's loss is -inf at step 1, its invariance error "
                                           r"[0-9.e+-]+: lam 3e\+38 and smooth 0 weigh its terms past float32's "
                                           r"range \(a smaller lam or smooth\)"):
        fit_blur_mask(band_target(), ridges(), steps=3, lam=3e38, m_min=3)  # log m >= 1.1: past 3.4e38
