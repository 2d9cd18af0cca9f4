r"""Kaldi data dirs and checked ark/scp/wav I/O."""

from flowaccent.data.audio import read_wav
from flowaccent.data.datadir import (
    DataDir,
    load_data_dir,
    read_table,
    subset_data_dir,
    validate_data_dir,
    write_spk2utt,
    write_table,
)
from flowaccent.data.fix import FixSummary, fix_data_dir
from flowaccent.data.kaldi_io import ArkWriter, ScpReader, iter_ark, read_matrix, read_scp
from flowaccent.errors import DataDirError, KaldiIOError

__all__ = [
    "ArkWriter",
    "DataDir",
    "DataDirError",
    "FixSummary",
    "KaldiIOError",
    "ScpReader",
    "fix_data_dir",
    "iter_ark",
    "load_data_dir",
    "read_matrix",
    "read_scp",
    "read_table",
    "read_wav",
    "subset_data_dir",
    "validate_data_dir",
    "write_spk2utt",
    "write_table",
]
