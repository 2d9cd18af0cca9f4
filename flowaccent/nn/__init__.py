r"""Small neural-network pieces shared by training and the blur-mask module."""

from flowaccent.nn.gradient_filter import GradientFilter, gradient_filter

__all__ = ["GradientFilter", "gradient_filter"]
