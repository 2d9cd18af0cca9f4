r"""Removal orders and baselines, deletion curves, AUCs, the relevance gain and the lab's table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from flowaccent.blurmask.blur import triangular_blur
from flowaccent.blurmask.evaluate import (
    KALDI_LOG_FLOOR,
    DeletionConfig,
    DeletionCurves,
    deletion_curves,
    removal_mask,
    removal_order,
    remove,
    summarise,
)
from flowaccent.errors import ConfigError, FeatureError


def test_orders_remove_the_right_cells():
    m = torch.arange(12.0).reshape(3, 4)
    low = removal_mask(m, 0.25, "low")
    high = removal_mask(m, 0.25, "high")
    assert low.sum() == high.sum() == 3
    assert torch.equal(m[low].sort().values, torch.tensor([0.0, 1, 2]))
    assert torch.equal(m[high].sort().values, torch.tensor([9.0, 10, 11]))
    assert removal_mask(m, 0.0, "low").sum() == 0 and removal_mask(m, 1.0, "high").all()
    assert torch.equal(removal_mask(m, 0.5, "random", seed=3), removal_mask(m, 0.5, "random", seed=3))
    assert not torch.equal(removal_order(m, "random", 0), removal_order(m, "random", 1))


def test_ties_are_broken_at_random_not_by_position():
    m = torch.ones(10, 10)
    m[0, 0] = 0.5
    first = [int(removal_order(m, "low", seed)[1]) for seed in range(5)]
    assert int(removal_order(m, "low", 0)[0]) == 0 and len(set(first)) > 1


def test_baselines():
    x = torch.randn(6, 5) + 3
    m = torch.linspace(1, 10, 30).reshape(6, 5)
    everything = remove(x, m, 1.0, "low", "floor")
    assert torch.equal(everything, torch.full_like(x, float(x.min())))
    assert torch.equal(remove(x, m, 1.0, "low", "floor", floor="kaldi"), torch.full_like(x, KALDI_LOG_FLOOR))
    assert abs(KALDI_LOG_FLOOR + 15.942385) < 1e-5
    torch.testing.assert_close(remove(x, m, 1.0, "high", "mean"), x.mean(0, keepdim=True).expand_as(x))
    half = remove(x, m, 0.4, "high", "mean")
    removed = removal_mask(m, 0.4, "high")
    assert torch.equal(half[~removed], x[~removed])
    # blur: removed cells spread at m_max, kept cells at their widths (or 1)
    widest = triangular_blur(x, torch.full_like(x, 7.0))
    torch.testing.assert_close(remove(x, m, 1.0, "low", "blur", max_blur=7.0), widest)
    torch.testing.assert_close(remove(x, m, 0.0, "low", "blur", widths=m), triangular_blur(x, m))
    torch.testing.assert_close(remove(x, m, 0.0, "low", "blur"), triangular_blur(x, m))  # by default: m's widths
    assert torch.equal(remove(x, m, 0.0, "low", "blur", widths=1.0), triangular_blur(x, torch.ones_like(x)))
    assert torch.equal(remove(x.numpy(), m.numpy(), 0.4, "high", "mean"), half)  # numpy, as fit_blur_mask takes
    expected = triangular_blur(x, torch.where(removed, 10.0, m), "fold")
    torch.testing.assert_close(remove(x, m, 0.4, "high", "blur", widths=m, mode="fold"), expected)
    with pytest.raises(ConfigError, match="baseline"):
        remove(x, m, 0.5, "low", "zero")
    with pytest.raises(ConfigError, match="order"):
        remove(x, m, 0.5, "middle")


def oracle():
    r"""A target reading the first two bins, and a mask that knows it."""
    x = torch.randn(10, 6, generator=torch.Generator().manual_seed(0)) + 4
    m = torch.full((10, 6), 9.0)
    m[:, :2] = 1.0
    return (lambda v: v[:, :2] * torch.tensor([1.0, -2.0])), x, m


def test_deletion_curves_of_an_oracle_mask():
    target, x, m = oracle()
    config = DeletionConfig(step=0.1, random_seeds=3)
    curves = deletion_curves(target, x, m, "floor", config)
    assert np.allclose(curves.fractions, np.linspace(0, 1, 11))
    low, high = curves.change["low"], curves.change["high"]
    assert low[0] == 0 and high[0] == 0 and np.isclose(low[-1], high[-1])
    assert (high[:7] < 1e-6).all()  # the 4 unread bins (67% of cells) go first: nothing changes
    assert (low[4:] > 0).all()
    assert curves.normalised("low").max() == pytest.approx(1.0)
    auc = curves.auc
    assert auc["low"] > auc["random"] > auc["high"] and curves.srg > 0.5
    assert curves.random_std.shape == (11,) and curves.random_std.max() > 0
    # the change is the RMS in output standard deviations
    removed = remove(x, m, 0.5, "low", "floor")
    reference = target(x)
    rms = math.sqrt(float((target(removed) - reference).square().mean() / reference.var(unbiased=False)))
    assert curves.at(0.5, "low") == pytest.approx(rms, rel=1e-5)


def test_an_output_overflowing_as_cells_are_removed_is_an_error():
    r"""Features x 1e6: the output with cells removed was inf, and the curves went on (NaN AUCs and SRG, 'inf' in
    the tables, exit 0)."""
    target, x, m = oracle()

    def overflowing(x):  # finite as given, inf once a cell is at the floor
        return torch.where((x < -10).any(-1, keepdim=True), torch.tensor(float("inf")), target(x))

    with pytest.raises(FeatureError, match=r"^deletion curves: the target's output changed by (inf|nan) with 10% of "
                                           r"the cells removed \(at random, seed 0, baseline floor\): it overflowed"):
        deletion_curves(overflowing, x, m, "floor", DeletionConfig(step=0.1, random_seeds=1, floor="kaldi"))


def test_summary_and_the_lab_table():
    target, x, m = oracle()
    config = DeletionConfig(step=0.1, random_seeds=2)
    curves = [deletion_curves(target, x + shift, m, "mean", config) for shift in (0.0, 1.0, -0.5)]
    summary = summarise(curves)
    assert summary["num_utts"] == 3 and len(summary["fractions"]) == 11
    assert set(summary["table"]) == {"50", "80"}
    row = summary["table"]["80"]
    assert row["low"] == pytest.approx(np.median([c.at(0.8, "low") for c in curves]))
    assert row["low_above_high"] == 3 and summary["srg"]["positive"] == 3
    assert summary["auc"]["low"]["mean"] == pytest.approx(np.mean([c.auc["low"] for c in curves]))
    assert len(summary["curves"]["random"]["mean"]) == 11
    assert summary["num_defined"] == 3
    assert summarise([]) == {"num_utts": 0, "num_defined": 0}


def test_a_target_blind_to_the_input_has_no_normalised_curve():
    zeros = {o: np.zeros(3) for o in ("low", "high", "random")}
    flat = DeletionCurves("floor", np.linspace(0, 1, 3), zeros, np.zeros(3))
    assert np.isnan(flat.normalised("low")).all() and math.isnan(flat.srg)


def test_undefined_curves_are_left_out_of_the_means_and_counted():
    target, x, m = oracle()
    config = DeletionConfig(step=0.1, random_seeds=2)
    defined = [deletion_curves(target, x + shift, m, "floor", config) for shift in (0.0, 1.0)]
    # one frame and the mean baseline: every removed cell gets its own value, nothing changes
    flat = deletion_curves(target, x[:1], m[:1], "mean", config)
    assert not flat.defined and flat.largest == 0 and all(d.defined for d in defined)
    summary = summarise([*defined, flat])
    assert summary["num_utts"] == 3 and summary["num_defined"] == 2
    assert summary["auc"]["low"]["mean"] == pytest.approx(np.mean([c.auc["low"] for c in defined]))
    assert summary["srg"]["positive"] == 2 and not np.isnan(summary["curves"]["low"]["mean"]).any()
    # the lab's table holds raw changes, defined for every utterance (0 for the flat one)
    assert summary["table"]["50"]["low"] == pytest.approx(np.median([c.at(0.5, "low") for c in [*defined, flat]]))
    assert summary["table"]["50"]["low_above_high"] == 2
    only_flat = summarise([flat])
    assert only_flat["num_defined"] == 0 and "auc" not in only_flat and "srg" not in only_flat
    assert set(only_flat["table"]) == {"50", "80"}


def test_config_errors():
    with pytest.raises(ConfigError, match="step"):
        DeletionConfig(step=0.3)
    assert len(DeletionConfig(step=0.001).fractions) == 1001
    with pytest.raises(ConfigError, match=r"step must be >= 0.001 \(1001 points, each a scoring of every utterance"):
        DeletionConfig(step=1e-12)  # numpy's 7.28 TiB grid, a traceback
    with pytest.raises(ConfigError, match="baselines"):
        DeletionConfig(baselines=("floor", "noise"))
    curves = deletion_curves(*oracle(), "floor", DeletionConfig(step=0.25, random_seeds=1))
    assert np.allclose(curves.fractions, [0, 0.25, 0.5, 0.75, 0.8, 1])  # the lab's 0.8 is always measured
    with pytest.raises(ConfigError, match="fractions"):
        curves.at(0.3, "low")
