r"""The DNF prior: class-conditional Gaussian on the first ``cond_dim`` latent dims.

Discriminative normalization flow (Cai et al., "Deep normalization for speaker
vectors", TASLP 2021). ``z`` is split into ``c = z[:, :cond_dim]`` and
``r = z[:, cond_dim:]``; ``c | y ~ N(mu_y, class_var I)`` with one learned mean
per class, ``r ~ N(0, residual_var I)``. Without a label,
``log p(z) = logsumexp_y [log pi_y + log p(z | y)]`` with uniform ``pi``.
``cond_dim = 0`` (or a single class with zero mean) is a plain normal prior.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from flowaccent.errors import ConfigError
from flowaccent.prior_config import PriorConfig

LOG_2PI = math.log(2 * math.pi)


def draw_device(generator: torch.Generator | None) -> torch.device:
    r"""Where random draws with ``generator`` are made: its device, the CPU without one."""
    return generator.device if generator is not None else torch.device("cpu")


def gaussian_log_prob(x: Tensor, mean: Tensor | float, var: float) -> Tensor:
    r"""``sum_d log N(x_d; mean_d, var)`` over the last dim: ``(..., d) -> (...)``."""
    d = x.shape[-1]
    diff = x if isinstance(mean, float) and mean == 0.0 else x - mean  # the residual dims' mean is 0: no copy
    return -0.5 * ((diff * diff).sum(-1) / var + d * (LOG_2PI + math.log(var)))


class DNFPrior(nn.Module):
    r"""``log p(z [| y])`` for latents ``z`` ``(B, D)``.

    Arguments:
        config: the prior's settings.
        dim: latent dimension ``D``.
        num_classes: number of classes (>= 1).
    """

    def __init__(self, config: PriorConfig, dim: int, num_classes: int):
        super().__init__()
        if config.cond_dim > dim:
            raise ConfigError(f"prior: cond_dim {config.cond_dim} is larger than the input dim {dim}")
        if num_classes < 1:
            raise ConfigError("prior: need at least one class")
        self.config, self.dim, self.num_classes = config, dim, num_classes
        self.means = nn.Parameter(torch.zeros(num_classes, config.cond_dim), requires_grad=config.learn_means)

    def class_log_probs(self, z: Tensor, means: Tensor | None = None) -> Tensor:
        r"""``log p(z | y)`` for every class: ``(B, D) -> (B, C)``; ``means`` ``(C, cond_dim)``: the class means
        as given (the trainer's gradient filter passes them through it), else :attr:`means`."""
        k = self.config.cond_dim
        c, r = z.split([k, z.shape[1] - k], dim=1)
        means = (self.means if means is None else means).to(z.dtype)
        # ||c - mu_y||^2 = ||c||^2 - 2 c.mu_y + ||mu_y||^2: a (B, k) x (k, C) matmul instead of a (B, C, k) tensor
        sq = (c * c).sum(1, keepdim=True) - 2 * c @ means.T + (means * means).sum(1)
        var = self.config.class_var
        log_c = -0.5 * (sq / var + k * (LOG_2PI + math.log(var)))
        log_r = gaussian_log_prob(r, 0.0, self.config.residual_var)
        return log_c + log_r[:, None]

    def log_prob(self, z: Tensor, labels: Tensor | None = None, means: Tensor | None = None) -> Tensor:
        r"""``log p(z | y)`` with labels ``(B,)``, else the uniform mixture over classes: ``(B,)``; ``means`` as in
        :meth:`class_log_probs`."""
        per_class = self.class_log_probs(z, means)
        if labels is not None:
            return per_class.gather(1, labels.long()[:, None])[:, 0]
        return torch.logsumexp(per_class, dim=1) - math.log(self.num_classes)

    def class_posterior_log(self, z: Tensor) -> Tensor:
        r"""``log p(y | z)`` under uniform class priors: ``(B, D) -> (B, C)``."""
        per_class = self.class_log_probs(z)
        return per_class - torch.logsumexp(per_class, dim=1, keepdim=True)

    @torch.no_grad()
    def init_means(self, z: Tensor, labels: Tensor) -> None:
        r"""Sets each class mean to the mean of ``c`` over that class's frames (others: 0)."""
        k = self.config.cond_dim
        for y in range(self.num_classes):
            chosen = z[labels == y, :k]
            self.means[y] = chosen.mean(0) if len(chosen) else 0.0

    def sample(self, num: int, labels: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        r"""Draws ``(num, D)`` latents (class ``labels`` ``(num,)``, or uniform classes) on the means' device; the
        draws are made on ``generator``'s (the CPU by default)."""
        where = draw_device(generator)
        if labels is None:
            labels = torch.randint(self.num_classes, (num,), generator=generator, device=where)
        k = self.config.cond_dim
        noise = torch.randn(num, self.dim, generator=generator, device=where).to(self.means.device)
        c = self.means[labels.to(self.means.device)] + noise[:, :k] * math.sqrt(self.config.class_var)
        r = noise[:, k:] * math.sqrt(self.config.residual_var)
        return torch.cat([c, r], dim=1)
