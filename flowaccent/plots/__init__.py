r"""Every figure of the toolkit (the only package that imports matplotlib).

Each function draws one figure and saves it as ``<base>.png`` and ``<base>.pdf`` (each written whole:
:func:`flowaccent.plots.figure.save`); it returns the PNG path. Sets are coloured by accent: native blue, zh
red, ja pink, others from a palette (then evenly spread hues); an accent's sets, in name order, take its colour and
then darker and lighter shades of it (``dev_native`` the colour, ``test_native`` a darker blue), none near another
accent's colour, so no two sets share one and a set keeps its colour in every report
(:mod:`flowaccent.plots.colours`). The figures of one report take one mapping (``cols``), so a set keeps its colour
in every figure. Legends with many entries or long names go beside the axes, names shortened in the middle.

One module per kind of figure: :mod:`~flowaccent.plots.latents`, :mod:`~flowaccent.plots.scores`,
:mod:`~flowaccent.plots.speakers`, :mod:`~flowaccent.plots.training`, :mod:`~flowaccent.plots.blurmask`,
:mod:`~flowaccent.plots.phones`; all are named here.
"""

from flowaccent.plots.blurmask import blurmask_deletion_curves, blurmask_utterance
from flowaccent.plots.colours import ACCENT_COLOURS, PALETTE, colours
from flowaccent.plots.figure import short_name, short_names
from flowaccent.plots.latents import MIN_FRAMES, latents_first_dims, latents_pca, latents_tsne, tsne_points
from flowaccent.plots.phones import phone_differences
from flowaccent.plots.scores import MARKERS, MIN_HISTOGRAM, histograms, rating_scatter, roc_curves
from flowaccent.plots.speakers import speaker_means, speaker_scores
from flowaccent.plots.training import training_curves

__all__ = [
    "ACCENT_COLOURS", "MARKERS", "MIN_FRAMES", "MIN_HISTOGRAM", "PALETTE", "blurmask_deletion_curves",
    "blurmask_utterance", "colours", "histograms", "latents_first_dims", "latents_pca", "latents_tsne",
    "phone_differences", "rating_scatter", "roc_curves", "short_name", "short_names", "speaker_means",
    "speaker_scores", "training_curves", "tsne_points",
]
