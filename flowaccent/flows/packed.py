r"""Conditioner MLPs on oneDNN with prepacked weights and fused bias + activation (CPU inference).

Without gradients on a CPU, ``nn.Linear`` + ReLU costs more than its matrix product: ``addmm``
first copies the bias over the whole ``(B, hidden)`` output, MKL then re-packs the weight on
every call, and the ReLU is one more pass over the output. oneDNN's inner product
(``torch.ops.mkldnn._linear_pointwise``, the kernel ``torch.compile`` uses for frozen CPU
models) takes the weight once reordered into its blocked layout and applies bias and
activation while the output tile is still in cache. ``benchmarks/bench_model.py`` measures the
difference (``docs/performance.md``).

Packing costs about 0.4 ms per 512 x 512 layer, so the weights are packed once and reused,
which is only right while they do not change: the path is on only inside
:func:`packed_inference` (scoring uses it), whose caller promises that. Inside it the cache is
also keyed on the parameters' storage and version counters, which catches ``load_state_dict``
and plain in-place updates, but not torch's fused optimisers (they do not bump the counter).
The cache lives outside the modules (no state_dict entry, nothing for pickling or ``deepcopy``
to see) and is dropped on leaving the block. ``FLOWACCENT_ONEDNN=0`` turns the path off; it is
used only for float32 CPU tensors with oneDNN available, and otherwise the module runs as
usual. Same values as the module to float32 rounding (tested for every activation, with and
without context).
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import torch
from torch import Tensor, nn

#: oneDNN post-op (name, scalars, algorithm) per activation; ELU has none and runs after the product.
POST_OPS = {
    "relu": ("relu", [], ""),
    "gelu": ("gelu", [], "none"),
    "tanh": ("tanh", [], ""),
    "silu": ("swish", [], ""),
}
#: The batch size oneDNN chooses the weights' layout for; any large batch gives the same layout,
#: and measured small batches ran as fast with it as with their own (the layout depends on it, not the values).
PACK_BATCH = 8192

#: Every module inside a :func:`packed_inference` block -> (key, a value derived from its weights) once built
#: (:func:`block_cached`: a conditioner MLP's packed weights, :mod:`flowaccent.flows.folded`'s plans).
_derived: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, object] | None] = weakref.WeakKeyDictionary()

T = TypeVar("T")


@contextlib.contextmanager
def packed_inference(module: nn.Module) -> Iterator[None]:
    r"""Within the block, no-grad float32 CPU forwards of ``module``'s conditioners run on oneDNN
    with weights packed on first use, and what :func:`block_cached` derives from ``module``'s weights (a
    flow's folded form, :mod:`flowaccent.flows.folded`) is kept. The caller promises the weights do not
    change inside."""
    owners = [m for m in module.modules() if m not in _derived]
    for owner in owners:
        _derived[owner] = None
    try:
        yield
    finally:
        for owner in owners:
            _derived.pop(owner, None)


def block_cached(owner: nn.Module, key: tuple, build: Callable[[], T]) -> T | None:
    r"""``build()``, a value derived from ``owner``'s weights, inside a :func:`packed_inference` block (None
    outside one); built again when ``key`` (e.g. :func:`weights_key` of them) changes, dropped on leaving."""
    if owner not in _derived:
        return None
    cached = _derived[owner]
    if cached is None or cached[0] != key:
        cached = (key, build())
        _derived[owner] = cached
    return cached[1]


#: In scoring and validation, a float32 CPU batch's rows (under bf16's autocast too) are made a multiple of this
#: (:func:`padded_rows`): oneDNN keeps a kernel for each batch shape it meets (its primitive cache, up to 1024 of
#: them, 1.2-1.5 MB each for the demo's model as measured), and scoring's batches, cut at utterance boundaries,
#: came in every size: a score's RSS grew by 36 MB every 200k frames of utterances of varied lengths (725 MB at 1.6M
#: frames against 471 MB at 200k), and stayed flat at 256 (an ad hoc loop of 300 batches of 7000-8800 rows: 774 MB
#: unpadded, 317 MB padded). The padding, 128 rows a batch on average, is 1.6% of a batch of 8000.
ROW_MULTIPLE = 256


def padded_rows(x: Tensor, *more: Tensor) -> tuple[Tensor, ...]:
    r"""``x`` ``(N, ...)`` (and each of ``more``, ``(N, ...)`` alike) with copies of its last row appended up to a
    multiple of :data:`ROW_MULTIPLE` rows, where oneDNN would multiply it (float32 on a CPU, in float32 or under
    bf16's autocast, and :func:`onednn_enabled`); as they are elsewhere. The caller keeps the first ``N`` rows of
    what it computes from them: the flow takes each row on its own (in eval mode), so the copies change no other
    row's results."""
    extra = -len(x) % ROW_MULTIPLE
    if not extra or not len(x) or x.device.type != "cpu" or x.dtype != torch.float32 or not onednn_enabled():
        return (x, *more)  # under bf16's autocast too: its products are oneDNN's, a kernel per shape as well
    return tuple(torch.cat([t, t[-1:].expand(extra, *t.shape[1:])]) for t in (x, *more))


def weights_key(params: Iterable[Tensor]) -> tuple:
    r"""What identifies the values of ``params`` inside a block: storage, version counter and shape of each."""
    return tuple((p.data_ptr(), p._version, p.shape) for p in params)


def onednn_usable(net: nn.Module, x: Tensor) -> bool:
    r"""Whether :func:`packed_mlp` runs ``net`` on ``x``: inside :func:`packed_inference`,
    :func:`float32_cpu` and :func:`onednn_enabled`."""
    return net in _derived and float32_cpu(x) and onednn_enabled()


def float32_cpu(x: Tensor) -> bool:
    r"""``x`` is float32 on a CPU, outside autocast (bf16, flowaccent.runtime: autocast's own kernels). With
    :func:`onednn_enabled`, whether oneDNN may multiply it: shared by inference (here) and training
    (:mod:`flowaccent.flows.onednn_train`)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


def onednn_enabled() -> bool:
    r"""oneDNN is built in and switched on, and not opted out of (``FLOWACCENT_ONEDNN=0``)."""
    return (
        os.environ.get("FLOWACCENT_ONEDNN", "1") != "0"
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
    )


def _key(linears: list[nn.Linear], tail_scale: tuple[int, float] | None) -> tuple:
    return weights_key(p for layer in linears for p in (layer.weight, layer.bias)) + (tail_scale,)


def _pack(linears: list[nn.Linear], tail_scale: tuple[int, float] | None) -> list[tuple[Tensor, Tensor]]:
    layers = [(layer.weight.detach(), layer.bias.detach()) for layer in linears]
    if tail_scale is not None:
        first, factor = tail_scale
        weight, bias = (t.clone() for t in layers[-1])
        weight[first:] *= factor
        bias[first:] *= factor
        layers[-1] = (weight, bias)
    return pack(layers)


def pack(layers: list[tuple[Tensor, Tensor]]) -> list[tuple[Tensor, Tensor]]:
    r"""``(weight (out, in), bias (out,))`` per layer -> the weight in oneDNN's blocked layout, and the bias."""
    return [(torch.ops.mkldnn._reorder_linear_weight(w, PACK_BATCH), b.contiguous()) for w, b in layers]


def packed_mlp(net: nn.Sequential, activation: str, x: Tensor, tail_scale: tuple[int, float] | None = None) -> Tensor:
    r"""``net(x)`` for an MLP of ``Linear, act, ..., Linear``: ``(B, d_in) -> (B, d_out)``.

    Arguments:
        net: the MLP (every layer but the last followed by one ``activation``).
        activation: a key of :data:`flowaccent.flows.coupling.ACTIVATIONS`.
        x: float32 CPU input.
        tail_scale: ``(first, factor)``: outputs ``first:`` come out multiplied by ``factor``
            (folded into the packed last layer, so it costs nothing per call).
    """
    linears = [m for m in net if isinstance(m, nn.Linear)]
    layers = block_cached(net, _key(linears, tail_scale), lambda: _pack(linears, tail_scale))
    return run_packed(_pack(linears, tail_scale) if layers is None else layers, net, activation, x)


def run_packed(layers: list[tuple[Tensor, Tensor]], net: nn.Sequential, activation: str, x: Tensor) -> Tensor:
    r"""The MLP ``net`` on float32 CPU ``x`` ``(B, d_in)`` with its weights as :func:`pack` returned them (its
    own or folded ones): ``(B, d_out)``; ``activation`` fused into every product but the last."""
    post_op = POST_OPS.get(activation)
    act = None if post_op is not None else next(m for m in net if not isinstance(m, nn.Linear))
    h = x
    for i, (weight, bias) in enumerate(layers):
        last = i == len(layers) - 1
        name, scalars, algorithm = ("none", [], "") if last or post_op is None else post_op
        h = torch.ops.mkldnn._linear_pointwise(h, weight, bias, name, scalars, algorithm)
        if act is not None and not last:
            h = act(h)
    return h
