r"""Typed errors a user can cause.

Every error a user can cause (a bad path, a damaged ark, a bad data dir, a wrong
dimension) is a :class:`FlowAccentError`. The CLI prints its message as one line
and exits non-zero; anything else is an internal bug and may raise.
"""

from __future__ import annotations


class FlowAccentError(Exception):
    r"""Base class of the errors a user can cause; the message names file and problem."""


class DataDirError(FlowAccentError):
    r"""A Kaldi data dir breaks Kaldi's rules (sorting, keys, speakers, missing files)."""


class KaldiIOError(FlowAccentError):
    r"""An ark, scp or pipe cannot be read or written (damaged, missing, failing)."""


class FeatureError(FlowAccentError):
    r"""Features have the wrong shape, dimension or values (NaN, inf)."""


class AudioError(FlowAccentError):
    r"""A wav.scp entry cannot be read as audio."""


class WorkerError(FlowAccentError):
    r"""A worker process died (killed, out of memory, crashed) before its jobs were done."""


class ConfigError(FlowAccentError):
    r"""A configuration is invalid (unknown key, wrong type, impossible value)."""
