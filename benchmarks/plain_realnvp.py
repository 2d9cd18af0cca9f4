r"""A plain, hand-written PyTorch RealNVP (no nflows): the reference for benchmarks and training.

``num_blocks`` affine couplings on contiguous halves (even blocks keep ``x[:, :dim // 2]`` and
transform the rest, odd blocks the opposite), each followed by a normalisation layer
(``batchnorm``, ``actnorm`` or ``none``), and a standard-normal prior. Coupling:
``y_b = x_b * exp(s) + t`` with ``(t, u) = MLP(x_a)`` and ``s = clamp * tanh(u / clamp)``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class BatchNormFlow(nn.Module):
    r"""Batch norm as a flow (RealNVP paper): ``y = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta``.

    Training mode: ``m, v`` are the batch mean and (biased) variance, and the running statistics
    are updated as in ``nn.BatchNorm1d`` (unbiased variance, ``momentum``); eval mode: the running
    statistics (variance starting at 1, so an untrained layer is the identity). The log-det treats
    ``m, v`` as constants. ``(B, D) -> ((B, D), (B,))``.
    """

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.log_gamma = nn.Parameter(torch.zeros(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training:
            mean, var = x.mean(0), x.var(0, unbiased=False)
            with torch.no_grad():
                n = len(x)
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / max(n - 1, 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        log_scale = self.log_gamma - 0.5 * torch.log(var + self.eps)
        return (x - mean) * log_scale.exp() + self.beta, log_scale.sum().expand(len(x))


class ActNorm(nn.Module):
    r"""``y = x * exp(s) + t`` per feature, data-initialised on the first training batch (``y``: zero mean,
    unit variance). ``(B, D) -> ((B, D), (B,))``."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.shift = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if self.training and not self.initialized:
            with torch.no_grad():
                self.log_scale.copy_(-torch.log(x.std(0) + 1e-6))
                self.shift.copy_(-x.mean(0) * self.log_scale.exp())
                self.initialized.fill_(True)
        return x * self.log_scale.exp() + self.shift, self.log_scale.sum().expand(len(x))


class Coupling(nn.Module):
    r"""Affine coupling on contiguous halves: keeps ``x[:, :d]`` (``first``) or ``x[:, d:]`` and transforms
    the other half. ``(B, D) -> ((B, D), (B,))``."""

    def __init__(self, dim: int, d: int, first: bool, hidden: int, num_layers: int, clamp: float):
        super().__init__()
        self.d, self.first, self.clamp = d, first, clamp
        d_in, self.k = (d, dim - d) if first else (dim - d, d)
        widths = [d_in] + [hidden] * num_layers
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        last = nn.Linear(hidden, 2 * self.k)  # shift, raw scale; zero: the coupling starts as the identity
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.net = nn.Sequential(*layers, last)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = (x[:, : self.d], x[:, self.d :]) if self.first else (x[:, self.d :], x[:, : self.d])
        params = self.net(a)
        shift, raw = params[:, : self.k], params[:, self.k :]
        s = self.clamp * torch.tanh(raw / self.clamp)
        y = b * s.exp() + shift
        return torch.cat([a, y] if self.first else [y, a], dim=1), s.sum(1)


class PlainRealNVP(nn.Module):
    r"""RealNVP ``x (B, dim) -> z (B, dim)`` with a standard-normal prior.

    Arguments:
        dim: features ``D`` (>= 2).
        num_blocks: couplings; block ``i`` keeps the first half ``x[:, :D // 2]`` when ``i`` is even,
            the rest when odd.
        hidden, num_layers: the conditioner MLP (``num_layers`` hidden ReLU layers of width ``hidden``;
            its last Linear is zero-initialised).
        norm: ``batchnorm``, ``actnorm`` or ``none``, after every coupling.
        clamp: ``c`` of the log-scale ``c * tanh(u / c)``.

    Example:
        >>> PlainRealNVP(6, num_blocks=2, hidden=8).log_prob(torch.randn(5, 6)).shape
        torch.Size([5])
    """

    def __init__(
        self,
        dim: int,
        num_blocks: int = 10,
        hidden: int = 512,
        num_layers: int = 2,
        norm: str = "batchnorm",
        clamp: float = 2.0,
    ):
        super().__init__()
        if dim < 2 or norm not in ("batchnorm", "actnorm", "none"):
            raise ValueError(f"need dim >= 2 and norm batchnorm/actnorm/none, got {dim}, {norm!r}")
        self.dim = dim
        layers: list[nn.Module] = []
        for i in range(num_blocks):
            layers.append(Coupling(dim, dim // 2, i % 2 == 0, hidden, num_layers, clamp))
            if norm != "none":
                layers.append(BatchNormFlow(dim) if norm == "batchnorm" else ActNorm(dim))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""``x`` ``(B, D)`` -> ``(z (B, D), log|det dz/dx| (B,))``."""
        log_det = x.new_zeros(len(x))
        for layer in self.layers:
            x, ld = layer(x)
            log_det = log_det + ld
        return x, log_det

    def log_prob(self, x: Tensor) -> Tensor:
        r"""``log p(x) = log N(z; 0, I) + log|det dz/dx|``: ``(B, D) -> (B,)``."""
        z, log_det = self(x)
        return -0.5 * (z * z).sum(1) - 0.5 * self.dim * math.log(2 * math.pi) + log_det
