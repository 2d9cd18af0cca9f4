r"""RealNVP affine coupling on nflows, with a soft-clamped exponential scale."""

from __future__ import annotations

import math

import torch
from nflows.transforms.coupling import AffineCouplingTransform
from torch import Tensor, nn

from flowaccent.flows.onednn_train import onednn_mlp, onednn_training
from flowaccent.flows.packed import onednn_usable, packed_mlp

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "elu": nn.ELU, "silu": nn.SiLU}


class Conditioner(nn.Module):
    r"""MLP emitting shift and scale logits from the identity half (and an optional context).

    ``num_layers`` hidden layers of width ``hidden``; the last layer is zero-initialised
    so every coupling starts as the identity.

    Arguments:
        in_features: identity features ``d``.
        out_features: ``2 * (D - d)`` (shift and scale logits).
        hidden, num_layers, activation: the MLP.
        context_dim: width of the context vector appended to the input (0: none).
    """

    def __init__(
        self, in_features: int, out_features: int, hidden: int, num_layers: int, activation: str, context_dim: int = 0
    ):
        super().__init__()
        widths = [in_features + context_dim] + [hidden] * num_layers
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            act = nn.ReLU(inplace=True) if activation == "relu" else ACTIVATIONS[activation]()
            layers += [nn.Linear(a, b), act]
        last = nn.Linear(widths[-1], out_features)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)
        self.context_dim = context_dim
        self.activation = activation

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        r"""``(B, d) -> (B, 2 (D - d))`` in ``x``'s dtype (under bf16 autocast the matmuls run in
        bfloat16 and the coupling's tanh, exp and log-det sums stay in float32). With gradients on
        some CPUs the products run on oneDNN (:mod:`flowaccent.flows.onednn_train`)."""
        h = self.with_context(x, context)
        return onednn_mlp(self.net, h) if onednn_training(h) else self.net(h).to(x.dtype)

    def forward_packed(self, x: Tensor, context: Tensor | None = None, tail_scale=None) -> Tensor:
        r"""``forward`` without autograd on oneDNN (:func:`flowaccent.flows.packed.packed_mlp`)."""
        return packed_mlp(self.net, self.activation, self.with_context(x, context), tail_scale)

    def with_context(self, x: Tensor, context: Tensor | None) -> Tensor:
        r"""The MLP's input: ``x`` ``(B, d)`` with the context appended ``(B, d + context_dim)``."""
        if self.context_dim:
            if context is None:
                raise ValueError("this flow was built with context_dim > 0 and needs a context")
            x = torch.cat([x, context.to(x.dtype)], dim=-1)
        return x


def tanh_(x: Tensor) -> Tensor:
    r"""``x.tanh_()``; on a CPU as ``2 sigmoid(2 x) - 1``, in place: ``torch.tanh`` there runs an accurate
    vectorised tanh that on the AMD EPYC of docs/performance.md took 2.36 ms for 10000 x 220 floats, this
    0.38 ms. Absolute error at most ~2e-7 (float64 reference), against ``tanh``'s 3e-8: a few float32
    ulps of a log-scale, where only absolute errors count (they add up in the log-det)."""
    if x.device.type != "cpu":  # one kernel, not four: a GPU's step is bound by launching them
        return x.tanh_()
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


#: ``log2(e)``: :func:`exp_` computes ``exp(x)`` as ``exp2(x log2 e)`` on a CPU.
LOG2E = 1.0 / math.log(2.0)


def exp_(x: Tensor) -> Tensor:
    r"""``x.exp_()``; on a CPU as ``exp2(x log2 e)``, in place: ATen's ``exp`` there calls MKL's vector math
    (VML), threaded on its own per contiguous run: on the AMD EPYC of docs/performance.md 0.7-1.0 ms for
    10000 x 220 contiguous floats and 1.3 ms for the strided scale half of a conditioner's output (3.5 ms
    after ``torch.set_num_threads(2)``); ``exp2`` (SLEEF) 0.19 and 0.45 ms. Relative error (float64
    reference) at most 1.6e-7 for ``|x| <= 2`` (the default clamp's log-scales), 5e-7 at 10; ``exp``'s 6e-8."""
    if x.device.type != "cpu":  # one kernel, not two (as tanh_)
        return x.exp_()
    return x.mul_(LOG2E).exp2_()


def soft_clamp(raw: Tensor, clamp: float) -> tuple[Tensor, Tensor]:
    r"""``(u, exp(s))`` for ``s = c tanh(raw / c)``, ``u = s / c``: ``(B, k) -> 2 x (B, k)``, new tensors, through
    :func:`tanh_` and :func:`exp_` (no autograd: the nodes that call it write their backward with
    :func:`soft_clamp_grad_`)."""
    u = tanh_(torch.mul(raw, 1.0 / clamp))
    return u, exp_(torch.mul(u, clamp))


def soft_clamp_grad_(g: Tensor, u: Tensor) -> Tensor:
    r"""``dL/ds -> dL/draw`` in place on ``g``: times ``ds/draw = 1 - u^2`` (``u`` of :func:`soft_clamp`)."""
    return g.addcmul_(g * u, u, value=-1.0)


def affine_tail_(
    shift: Tensor, raw: Tensor, transformed: Tensor, clamp: float, log2_gain: Tensor | None = None
) -> Tensor:
    r"""The coupling's tail without autograd: ``transformed <- transformed exp(s) g + shift`` in place, with
    ``s = c tanh(raw)`` (``raw``: the scale logits over ``c``, used up); returns ``sum(s)`` ``(B,)``.

    Arguments:
        shift, raw, transformed: ``(B, k)``.
        clamp: ``c``.
        log2_gain: ``(k,)``, ``log2 g`` (CPU only; :mod:`flowaccent.flows.folded`'s ActNorm scales), or None: ``g = 1``.
    """
    if raw.device.type == "cpu":
        # ATen's element-wise loops take a strided view row by row, each row's last (width mod 32) floats one
        # at a time (28 of 220, 28 of 60): on the AMD EPYC the tail below ran 1.4-2x as fast on a copy
        raw = raw.contiguous()
    log_scale = tanh_(raw).mul_(clamp)
    log_det = log_scale.sum(dim=1)
    if log2_gain is None:
        scale = exp_(log_scale)
    else:  # exp2(s log2 e + log2 g): the gain in the pass that scales s anyway
        scale = torch.add(log2_gain, log_scale, alpha=LOG2E, out=log_scale).exp2_()
    torch.addcmul(shift, transformed, scale, out=transformed)  # x_t * exp(s) g + t, one pass
    return log_det


class _SoftClampExp(torch.autograd.Function):
    r"""``(s, exp(s))`` with ``s = c tanh(u / c)`` from scale logits ``u`` ``(B, k)``, one autograd node: forward
    through :func:`tanh_` and :func:`exp_`, backward ``g_s + g_e exp(s)`` times ``ds/du = 1 - (s / c)^2``. On a
    CPU, for the couplings outside :mod:`flowaccent.flows.halves` (BatchNorm or no norm, random masks: the wsj_l2
    recipe's lab settings), where ``torch.tanh`` and ``torch.exp`` run MKL's VML (see :func:`exp_`)."""

    @staticmethod
    def forward(ctx, raw: Tensor, clamp: float) -> tuple[Tensor, Tensor]:
        u, scale = soft_clamp(raw, clamp)
        ctx.save_for_backward(u, scale)
        return torch.mul(u, clamp), scale

    @staticmethod
    @torch.autograd.function.once_differentiable  # its saved tensors carry no graph: say so, not a wrong 2nd order
    def backward(ctx, g_log_scale: Tensor, g_scale: Tensor) -> tuple[Tensor, None]:
        u, scale = ctx.saved_tensors
        return soft_clamp_grad_(torch.addcmul(g_log_scale, g_scale, scale), u), None  # dL/ds, then dL/draw


class SoftClampAffineCoupling(AffineCouplingTransform):
    r"""Affine coupling ``y = x * exp(s) + t`` with ``s = c * tanh(u / c)``.

    nflows' own scale ``sigmoid(u + 2) + 1e-3`` is at most 1.001, so a flow of
    such couplings can only shrink space (DESIGN.md section 5); the soft clamp
    allows scales in ``[exp(-c), exp(c)]`` with gradients everywhere.

    Arguments:
        mask: ``(D,)``, > 0 for transformed features.
        conditioner: ``fn(d_identity, d_out) -> nn.Module``.
        clamp: ``c``.
    """

    def __init__(self, mask: Tensor, conditioner, clamp: float = 2.0):
        self.clamp = clamp
        super().__init__(mask, conditioner)
        d, k = self.num_identity_features, self.num_transform_features
        ident = self.identity_features.tolist()
        #: "first"/"last" when the identity half is a contiguous block (fast path), else None.
        self.layout = "first" if ident == list(range(d)) else "last" if ident == list(range(k, d + k)) else None

    def forward(self, inputs: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.layout is None:
            return super().forward(inputs, context)
        identity, transformed = self._split(inputs)
        y, log_det = self._coupling_transform_forward(transformed, self.transform_net(identity, context))
        return self._join(identity, y), log_det

    def inverse(self, inputs: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.layout is None:
            return super().inverse(inputs, context)
        identity, transformed = self._split(inputs)
        x, log_det = self._coupling_transform_inverse(transformed, self.transform_net(identity, context))
        return self._join(identity, x), log_det

    def forward_in_place(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        r"""The forward pass on ``x`` ``(B, D)`` in place, without autograd; returns ``log_det`` ``(B,)``.

        Only the transformed half of ``x`` changes; contiguous layouts only (``layout`` not None).
        """
        identity, transformed = self._split(x)
        net = self.transform_net
        if isinstance(net, Conditioner) and onednn_usable(net.net, x):  # u / c comes out of the packed last layer
            tail_scale = (self.num_transform_features, 1.0 / self.clamp)
            shift, raw = self._shift_and_raw(net.forward_packed(identity, context, tail_scale=tail_scale))
        else:
            shift, raw = self._shift_and_raw(net(identity, context))
            raw.div_(self.clamp)
        return affine_tail_(shift, raw, transformed, self.clamp)

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""Column views (no gather; their gradients are joined by one ``cat``) ``(identity, transformed)``."""
        d, k = self.num_identity_features, self.num_transform_features
        if self.layout == "first":
            identity, transformed = x.split([d, k], dim=1)
            return identity, transformed
        transformed, identity = x.split([k, d], dim=1)
        return identity, transformed

    def _join(self, identity: Tensor, transformed: Tensor) -> Tensor:
        parts = (identity, transformed) if self.layout == "first" else (transformed, identity)
        return torch.cat(parts, dim=1)

    def _scale_and_shift(self, transform_params: Tensor) -> tuple[Tensor, Tensor]:
        log_scale, shift = self._log_scale_and_shift(transform_params)
        return torch.exp(log_scale), shift

    def _shift_and_raw(self, transform_params: Tensor) -> tuple[Tensor, Tensor]:
        r"""The conditioner's output ``(B, 2k)`` as views ``(shift, scale logits)``, ``2 x (B, k)``."""
        n = self.num_transform_features
        return transform_params.split([n, n], dim=1)  # split: one gradient copy, not two

    def _log_scale_and_shift(self, transform_params: Tensor) -> tuple[Tensor, Tensor]:
        shift, raw = self._shift_and_raw(transform_params)
        return self.clamp * torch.tanh(raw / self.clamp), shift

    def _coupling_transform_forward(self, inputs: Tensor, transform_params: Tensor) -> tuple[Tensor, Tensor]:
        if transform_params.device.type == "cpu" and not torch.compiler.is_compiling():  # compiled: Inductor fuses it
            shift, raw = self._shift_and_raw(transform_params)
            log_scale, scale = _SoftClampExp.apply(raw, self.clamp)
            return inputs * scale + shift, log_scale.sum(dim=1)
        log_scale, shift = self._log_scale_and_shift(transform_params)
        return inputs * torch.exp(log_scale) + shift, log_scale.sum(dim=1)

    def _coupling_transform_inverse(self, inputs: Tensor, transform_params: Tensor) -> tuple[Tensor, Tensor]:
        log_scale, shift = self._log_scale_and_shift(transform_params)
        return (inputs - shift) * torch.exp(-log_scale), -log_scale.sum(dim=1)
