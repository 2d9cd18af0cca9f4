r"""Device, precision and compile options (flowaccent.runtime): errors, what bf16 changes and what it
must not, and that a compiled training step is the eager one in one graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

from flowaccent.errors import ConfigError
from flowaccent.features import FeaturePipeline, FeaturePipelineConfig
from flowaccent.flows.packed import onednn_usable, packed_inference
from flowaccent.flows.realnvp import ModelConfig
from flowaccent.model import FlowModel
from flowaccent.prior import PriorConfig
from flowaccent.runtime import (
    bf16_in_hardware,
    check_precision,
    compiled,
    compute_precision,
    precision_note,
    resolve_device,
    tf32_matmuls,
)

CPU = torch.device("cpu")


def test_devices_and_their_errors():
    assert resolve_device("cpu", "score") == CPU
    assert resolve_device("auto", "score").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match=r"score.device \(--device\) must be auto, cpu or cuda"):
        resolve_device("gpu", "score")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="train.device is cuda but no GPU is visible"):
            resolve_device("cuda", "train")


@pytest.mark.parametrize("rank", [0, 1])
def test_more_torchrun_processes_than_gpus_is_every_processs_error(rank, monkeypatch):
    r"""Two processes on a machine with one GPU: only the one without a GPU said so (``score`` found it after rank 0
    had scored its share of the first set). Every process now says the same, so rank 0 says it for the run."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for name, value in (("WORLD_SIZE", 2), ("RANK", rank), ("LOCAL_RANK", rank), ("LOCAL_WORLD_SIZE", 2),
                        ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, str(value))
    for device in ("auto", "cuda"):
        with pytest.raises(ConfigError, match=r"^train.device: 2 processes on this machine, but 1 GPU\(s\) visible: "
                           "start at most that many processes on it, one per GPU$"):
            resolve_device(device, "train")
    assert resolve_device("cpu", "train") == CPU
    for name in ("LOCAL_RANK", "LOCAL_WORLD_SIZE"):  # one process on each of two machines
        monkeypatch.setenv(name, "0" if name == "LOCAL_RANK" else "1")
    assert resolve_device("auto", "train") == torch.device("cuda", 0)
    # a launcher that sets no LOCAL_WORLD_SIZE: each process guessed the count from its own place (rank 2 said 3
    # processes, rank 1 said 2); only the one without a GPU can tell, and says so
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert resolve_device("auto", "train") == torch.device("cuda", 0)
    for local in (1, 2):
        monkeypatch.setenv("LOCAL_RANK", str(local))
        with pytest.raises(ConfigError, match=f"^train.device: process {local} of this machine has no GPU of its "
                           r"own \(1 visible\)"):
            resolve_device("auto", "train")


def test_precision_errors():
    check_precision(CPU, "fp32", "score")
    check_precision(CPU, "bf16", "score")
    with pytest.raises(ConfigError, match=r"score.precision \(--precision\) tf32 is a CUDA matmul mode; on cpu use"):
        check_precision(CPU, "tf32", "score")
    with pytest.raises(ConfigError, match="train.precision must be fp32, tf32 or bf16, got 'fp16'"):
        check_precision(CPU, "fp16", "train")
    with pytest.raises(ConfigError, match="tf32"), compute_precision(CPU, "tf32"):
        pass


def test_tf32_after_torchs_newer_flags_and_back():
    r"""tf32 on and off through torch's ``fp32_precision`` (the flags live without a GPU): reading ``allow_tf32``
    raised once a program had set ``fp32_precision``, and writing it back replaced ``none`` with ``ieee``."""
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    before = matmul.fp32_precision, conv.fp32_precision
    try:
        for start in ("none", "ieee"):
            matmul.fp32_precision = start
            with compute_precision(torch.device("cuda"), "tf32"):
                assert (matmul.fp32_precision, conv.fp32_precision) == ("tf32", "tf32")
            assert (matmul.fp32_precision, conv.fp32_precision) == (start, before[1])
            with tf32_matmuls(False):
                assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
            assert (matmul.fp32_precision, conv.fp32_precision) == (start, before[1])
    finally:
        matmul.fp32_precision, conv.fp32_precision = before


def without_bf16_units(monkeypatch, amx: bool = False, avx512_bf16: bool = False) -> None:
    r"""Makes this CPU look as if it had (or lacked) AMX tiles and AVX512-BF16."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)


@pytest.mark.parametrize("amx, avx512_bf16", [(False, False), (True, False), (False, True)])
def test_bf16_without_hardware_for_it_gets_a_note(monkeypatch, amx, avx512_bf16):
    without_bf16_units(monkeypatch, amx, avx512_bf16)
    assert bf16_in_hardware(CPU) == (amx or avx512_bf16)
    note = precision_note(CPU, "bf16", "score")
    if amx or avx512_bf16:
        assert note is None
    else:
        assert note == "score: precision bf16 is emulated on this CPU (no AMX or AVX512-BF16) and slower than fp32"
    assert precision_note(CPU, "fp32", "score") is None


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
def test_bf16_runs_the_conditioners_in_bf16_and_sums_in_float32(grad, monkeypatch):
    monkeypatch.setenv("FLOWACCENT_ONEDNN_TRAIN", "0")  # the float32 pass through nn.Linear, whose hooks count
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


def standardized_model(dim: int = 8, fit: bool = True) -> FlowModel:
    torch.manual_seed(0)
    pipeline = FeaturePipeline(FeaturePipelineConfig(cmvn="none", deltas=0, standardize=True), dim)
    if fit:
        pipeline.fit((x, None) for x in np.random.default_rng(0).normal(3.0, 2.0, (5, 100, dim)).astype(np.float32))
    m = FlowModel(pipeline, ModelConfig(num_blocks=3, hidden=32), PriorConfig(cond_dim=4), ("native", "zh"))
    if fit:
        m.initialize(torch.randn(256, dim) * 2 + 3, torch.arange(256) % 2)
    return m.train()


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_compiled_training_step_is_the_eager_one_in_one_graph(onednn, monkeypatch):
    r"""``train.compile``: same loss and gradients as eager (to float32 rounding), and the whole
    forward is one graph (the ActNorm and standardisation checks would split it at every block);
    with the conditioners' products on MKL, and on oneDNN (flows.onednn_train, as on AMD CPUs)."""
    monkeypatch.setenv("FLOWACCENT_ONEDNN_TRAIN", onednn)
    m = standardized_model()
    with torch.no_grad():
        for p in m.transform.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x, y = torch.randn(200, 8) * 2 + 3, torch.arange(200) % 2

    def loss_and_grads(forward):
        m.zero_grad(set_to_none=True)
        loss = forward(x, y).nll.mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in m.parameters() if p.grad is not None]

    want, want_grads = loss_and_grads(m)
    torch._dynamo.reset()
    counters.clear()
    forward = compiled(m, CPU, "train")
    loss_and_grads(forward)  # compiles
    with torch.profiler.profile() as profile:
        got, got_grads = loss_and_grads(forward)
    assert counters["stats"]["unique_graphs"] == 1 and not counters["graph_break"]
    products = sum(e.count for e in profile.key_averages() if e.key == "flowaccent::onednn_product")
    assert products == (0 if onednn == "0" else 3 * 3 * 3 - 1)  # 3 blocks x 3 layers x 3 products, no first g W
    assert copies_inside(profile, "flowaccent::onednn_product") == 0  # the weight gradient's transpose is Inductor's
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert len(got_grads) == len(want_grads) > 0
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)


def copies_inside(profile, op: str) -> int:
    r"""How many copies (``aten::copy_``) the profiled ``op`` made (ATen's own single-threaded transpose, say)."""
    def within(event):
        while event is not None:
            if event.name == op:
                return True
            event = event.cpu_parent
        return False

    return sum(e.name == "aten::copy_" and within(e) for e in profile.events())


def test_compile_errors(monkeypatch):
    with pytest.raises(ConfigError, match="train.compile: initialise the model"):
        compiled(standardized_model(fit=False), CPU, "train")
    from torch._inductor import cpp_builder

    def no_compiler():
        raise RuntimeError("no working C++ compiler found")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    with pytest.raises(ConfigError, match="train.compile on a CPU needs a C.. compiler .*no working C"):
        compiled(standardized_model(), CPU, "train")


def test_train_without_a_compiler_stops_before_any_work(monkeypatch, tmp_path, capsys):
    from torch._inductor import cpp_builder

    from flowaccent.cli.main import main

    def no_compiler():
        raise RuntimeError("no working C++ compiler found")

    monkeypatch.setattr(cpp_builder, "get_cpp_compiler", no_compiler)
    data = tmp_path / "data"
    data.mkdir()  # never read: the check comes first
    assert main(["train", "--exp", str(tmp_path / "exp"), str(data), "--train.device", "cpu",
                 "--train.compile", "true"]) == 1
    assert "train.compile on a CPU needs a C++ compiler" in capsys.readouterr().err
    assert not (tmp_path / "exp").exists()


def test_compile_mode_reaches_torch_compile(monkeypatch):
    seen = {}

    def fake_compile(module, **kwargs):
        seen.update(kwargs)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    m = standardized_model()
    assert compiled(m, CPU, "bench") is m and seen == {"dynamic": False, "mode": None}
    compiled(m, CPU, "bench", "reduce-overhead")
    assert seen == {"dynamic": False, "mode": "reduce-overhead"}
