r"""``flowaccent plot --exp EXP_DIR --scores OUT_DIR``: the figures alone."""

from flowaccent.cli.report import add_plot_parser as add_parser
from flowaccent.cli.report import run_plot as run

__all__ = ["add_parser", "run"]
