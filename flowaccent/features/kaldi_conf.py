r"""Kaldi feature config files (``conf/fbank.conf``): ``--name=value`` lines, read as :class:`FbankConfig` fields.

Every Kaldi recipe keeps its feature options in such a file and passes it as ``--config=conf/fbank.conf``;
``flowaccent fbank --config conf/fbank.conf`` reads the same file, as Kaldi's ``ReadConfigFile`` does: one
``--name=value`` per line (a bare ``--name`` is ``true``), ``#`` to the end of a line a comment, names in
any case and with ``_`` or ``-``. Kaldi's names are taken with kaldi-native-fbank's (``--frame-shift`` is
``frame_shift_ms``, ``--preemphasis-coefficient`` is ``preemph_coeff``). An option this toolkit does not
implement (VTLN, ``--blackman-coeff``, ``--subtract-mean``) is an error naming its line, not a silent
difference. A ``--config=`` line inside the file is not read, as Kaldi does not read it (``ReadConfigFile`` only
sets its ``--config`` string there); a warning names it.

Example:
    >>> import tempfile, pathlib
    >>> conf = pathlib.Path(tempfile.mkdtemp()) / "fbank.conf"
    >>> _ = conf.write_text("--num-mel-bins=23  # as in egs/*/conf\n--frame-shift=10\n--snip-edges=false\n")
    >>> read_kaldi_conf(conf)
    ({'num_mel_bins': 23, 'frame_shift_ms': 10.0, 'snip_edges': False}, None)
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from pathlib import Path
from typing import Any, Literal

from flowaccent.errors import ConfigError
from flowaccent.features.fbank import FbankConfig

#: Kaldi's names of options kaldi-native-fbank (and so :class:`FbankConfig`) names otherwise.
KALDI_NAMES = {"frame-shift": "frame_shift_ms", "frame-length": "frame_length_ms",
               "preemphasis-coefficient": "preemph_coeff"}
#: compute-fbank-feats options that do not change the features.
IGNORED = ("verbose", "print-args")


def read_kaldi_conf(path: str | Path) -> tuple[dict[str, Any], int | None]:
    r"""``(fields, channel)`` of the Kaldi config file ``path``: :class:`FbankConfig` field values, and the
    ``--channel`` it sets (None where it sets none). Raises :class:`ConfigError` naming the line for an
    option that is not one of compute-fbank-feats' this toolkit implements, or a value of the wrong type."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read it as a Kaldi config file ({error})") from None
    hints = typing.get_type_hints(FbankConfig)
    names = {f.name.replace("_", "-"): f.name for f in dataclasses.fields(FbankConfig)} | KALDI_NAMES
    fields: dict[str, Any] = {}
    channel = None
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{number}"
        if not line.startswith("--"):
            raise ConfigError(f"{where}: expected '--name=value', as Kaldi's config files hold, got '{line}'")
        name, _, value = line[2:].partition("=")
        name, value = name.strip().lower().replace("_", "-"), value.strip()  # Kaldi's NormalizeArgName
        if name in IGNORED:
            continue
        if name == "config":
            print(f"fbank: warning: {where}: --config={value} is not read: a config file inside a config file is not "
                  f"read by Kaldi either (its options are not applied)", file=sys.stderr)
            continue
        if name == "channel":
            channel = _value(int, value, where, name)
        elif name in names:
            fields[names[name]] = _value(hints[names[name]], value, where, name)
        else:
            raise ConfigError(f"{where}: --{name} is not an option flowaccent fbank implements (its options: "
                              f"flowaccent fbank --help)")
    return fields, channel


def _value(hint, text: str, where: str, name: str) -> Any:
    r"""``text`` as a value of the field type ``hint``: booleans as Kaldi's ``ToBool`` reads them (true, t, 1 or
    nothing; false, f, 0; any case), an integer also written as a whole float (Kaldi's ``--sample-frequency``
    is a float)."""
    try:
        if hint is bool:
            if text.lower() not in ("true", "t", "1", "", "false", "f", "0"):
                raise ValueError
            return text.lower() in ("true", "t", "1", "")
        if typing.get_origin(hint) is Literal:
            if text not in typing.get_args(hint):
                raise ValueError
            return text
        if hint is int and not text.lstrip("+-").isdigit() and float(text).is_integer():
            return int(float(text))
        return hint(text)
    except ValueError:
        raise ConfigError(f"{where}: --{name}: bad value '{text}'") from None
