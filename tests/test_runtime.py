r"""Device and precision options (flowaccent.runtime): errors, what bf16 changes and what it must not."""

from __future__ import annotations

import pytest
import torch

from flowaccent.errors import ConfigError
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.packed import onednn_usable, packed_inference
from flowaccent.flows.realnvp import ModelConfig
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig
from flowaccent.runtime import check_precision, compute_precision, resolve_device

CPU = torch.device("cpu")


def test_devices_and_their_errors():
    assert resolve_device("cpu", "score") == CPU
    assert resolve_device("auto", "score").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="score.device must be auto, cpu or cuda"):
        resolve_device("gpu", "score")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="train.device is cuda but no GPU is visible"):
            resolve_device("cuda", "train")


def test_precision_errors():
    check_precision(CPU, "fp32", "score")
    check_precision(CPU, "bf16", "score")
    with pytest.raises(ConfigError, match="score.precision tf32 is a CUDA matmul mode; on cpu use fp32 or bf16"):
        check_precision(CPU, "tf32", "score")
    with pytest.raises(ConfigError, match="train.precision must be fp32, tf32 or bf16, got 'fp16'"):
        check_precision(CPU, "fp16", "train")
    with pytest.raises(ConfigError, match="tf32"), compute_precision(CPU, "tf32"):
        pass


def model(dim: int = 8) -> FlowModel:
    torch.manual_seed(0)
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=False), dim)
    m = FlowModel(pipeline, ModelConfig(num_blocks=4, hidden=64), PriorConfig(cond_dim=4), ("native", "zh"))
    x = torch.randn(256, dim) * 2 + 1
    m.initialize(x, torch.arange(256) % 2)
    with torch.no_grad():
        for p in m.transform.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


@pytest.mark.parametrize("grad", [False, True])
def test_bf16_runs_the_conditioners_in_bf16_and_sums_in_float32(grad):
    m, x = model(), torch.randn(300, 8)
    seen, outputs = [], []
    hooks = [
        mod.register_forward_hook(lambda mod, i, o: outputs.append(o.dtype))
        for mod in m.modules()
        if hasattr(mod, "forward_packed")
    ]
    hooks += [
        lin.register_forward_hook(lambda mod, i, o: seen.append(o.dtype))
        for lin in m.modules()
        if isinstance(lin, torch.nn.Linear)
    ]
    with torch.set_grad_enabled(grad):
        want = m(x)
        with compute_precision(CPU, "bf16"):
            got = m(x)
    for h in hooks:
        h.remove()
    n = len(seen) // 2
    assert set(seen[:n]) == {torch.float32} and set(seen[n:]) == {torch.bfloat16}
    assert set(outputs) == {torch.float32}  # cast back before the coupling's tanh, exp and log-det sum
    for name in ("z", "log_p", "log_det"):
        assert getattr(got, name).dtype == torch.float32
    # the prior ran outside autocast: log_p is exactly the float32 prior of the bf16 run's z
    torch.testing.assert_close(got.log_p, m.prior.log_prob(got.z), rtol=0, atol=0)
    # bf16 products (8-bit mantissa): close to, not equal to, float32
    err = (got.log_ll - want.log_ll).abs().max().item()
    assert 0 < err < 0.05 * want.log_ll.abs().mean().item()


def test_bf16_is_not_served_by_the_float32_onednn_path():
    m, x = model(), torch.randn(50, 8)
    net = next(mod for mod in m.modules() if hasattr(mod, "forward_packed")).net
    with torch.no_grad(), packed_inference(m):
        assert onednn_usable(net, x)
        with compute_precision(CPU, "bf16"):
            assert not onednn_usable(net, x)
