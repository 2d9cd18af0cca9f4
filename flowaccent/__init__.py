r"""flowaccent: normalizing-flow accent analysis on Kaldi features."""

from flowaccent.errors import FlowAccentError

__version__ = "0.1.0"
__all__ = ["FlowAccentError", "__version__"]
