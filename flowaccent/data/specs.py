r"""Data dirs named on the command line: ``DATA_DIR`` or ``NAME=DATA_DIR``."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from flowaccent.data.datadir import UNUSED_BY_MODELS, DataDir, load_data_dir
from flowaccent.errors import ConfigError


def parse_data_specs(specs: Sequence[str | os.PathLike] | str | os.PathLike) -> list[tuple[str | None, Path]]:
    r"""``["path", "name=path"]`` -> ``[(None, path), (name, path)]``; a folder whose name holds ``=`` is a path,
    and so is a spec with a ``/`` before its ``=`` and no folder after it (named whole in the error it then
    gives; ``a/b=DIR`` with a folder DIR is a NAME that cannot name a set).
    An empty NAME or DATA_DIR is a ConfigError: ``=DIR`` was read as a folder named ``=DIR`` (``not a
    directory``), and ``NAME=`` as the current folder (``utt2spk: required but missing``). A ``Path`` is a dir
    (no NAME); one string or ``Path`` alone is a list of one."""
    if isinstance(specs, (str, os.PathLike)):  # one dir given alone (its characters were taken as dirs: '/')
        specs = [specs]
    out: list[tuple[str | None, Path]] = []
    for spec in specs:
        if isinstance(spec, os.PathLike):
            out.append((None, Path(spec)))
            continue
        if not isinstance(spec, str):
            raise ConfigError(f"data dirs are paths or 'NAME=DATA_DIR' strings, got {type(spec).__name__} {spec!r}")
        name, path = split_named(spec)
        if name is not None and (not name or not path):
            raise ConfigError(f"'{spec}': NAME=DATA_DIR with an empty {'NAME' if not name else 'DATA_DIR'}")
        out.append((name, Path(path)))
    return out


def split_named(spec: str) -> tuple[str | None, str]:
    r"""``"PATH"`` -> ``(None, "PATH")``, ``"NAME=PATH"`` -> ``("NAME", "PATH")``. A folder whose name holds ``=``
    is a path (``exp/lr=0.1/data``), and so is a spec with a ``/`` before its ``=`` and no folder after it. NAME or
    PATH may be empty (``"=x"``, ``"x="``): the caller says what it needs."""
    name, sep, path = spec.partition("=")
    if not sep or Path(spec).is_dir() or ("/" in name and not Path(path).is_dir()):
        return None, spec
    return name, path


#: A set's name: it names a folder of the command's output (``OUT/<name>/``).
SET_NAME = re.compile(r"[A-Za-z0-9_+-][A-Za-z0-9_.+-]*")


def warn_other_sets(out: Path, names: Iterable[str], command: str) -> None:
    r"""A line naming the folders in ``out`` of sets this run does not make (an earlier run's with other sets;
    left as they are: they are the user's files)."""
    names = set(names) | {"figures"}  # figures/: where 'flowaccent plot' draws by default
    folders = [p.name for p in out.iterdir() if p.is_dir()] if out.is_dir() else []
    stale = sorted(n for n in folders if n not in names and not n.startswith("."))  # .partial: blurmask's own
    if stale:
        print(f"{command}: warning: {out} holds folders of sets this run does not make: {', '.join(stale)} (an "
              f"earlier run's, or yours: left as they are; its summary.json lists this run's sets only)",
              file=sys.stderr)


def load_named_dirs(
    specs: Sequence[str], require: Iterable[str], command: str, reserved: Iterable[str] = ()
) -> dict[str, DataDir]:
    r"""Validated data dirs by name (``NAME=`` or the dir's name); two of one name are an error, and so is a name
    that is not a plain folder name (:data:`SET_NAME`) or is one of ``reserved`` (the files the command writes
    beside the sets' folders)."""
    sets: dict[str, DataDir] = {}
    for given, path in parse_data_specs(specs):
        data = load_data_dir(path, require=tuple(require), unused=UNUSED_BY_MODELS)
        name = given or data.name
        if not SET_NAME.fullmatch(name) or name in reserved:
            why = "a file the command writes" if name in reserved else "ASCII letters, digits, _ . + -, not first ."
            how = "give another NAME" if given else "name it with NAME=DATA_DIR"
            raise ConfigError(f"{command}: '{name}' cannot name a set ({why}); {how}")
        if name in sets:  # 'name them with NAME=' of two named a= already
            how = "give them different NAMEs" if given else "name them with NAME=DATA_DIR"
            raise ConfigError(f"{command}: two data dirs are named '{name}'; {how}")
        sets[name] = data
    return sets


def output_dir(path: str | Path, command: str, writes: Sequence[str] = ()) -> Path:
    r"""``path`` as a command's output folder: an error, not a traceback, where a file is in the way. ``writes``: the
    files the command writes there beside ``summary.json``: a folder holding one of them but no ``summary.json``
    (nor a stopped run's ``.partial``, nor sets score stamped complete) is someone else's, and is refused (a project
    folder's config.yaml was overwritten without a word)."""
    path = Path(path)
    check_parents(path, command)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{command}: --out {path} is a file; give a folder")
    if (path / "final.pt").exists() or (path / "checkpoints").is_dir():  # its config.yaml would be written over
        raise ConfigError(f"{command}: --out {path} is an experiment dir of 'flowaccent train'; give a folder "
                          f"inside it, e.g. {path / command}")
    if is_data_dir(path):
        raise ConfigError(f"{command}: --out {path} is a Kaldi data dir; give a folder of its own")
    # the other command's summary.json and config.yaml would be written over
    other = ("blurmask" if command == "score" and (path / "utt_table.tsv").exists() else
             "score" if command == "blurmask" and any(path.glob("*/utt_scores.tsv")) else
             "phones" if command != "phones" and (path / "phones.json").exists() else None)
    if other:
        raise ConfigError(f"{command}: --out {path} holds the output of 'flowaccent {other}'; give another folder")
    theirs = [name for name in writes if (path / name).exists()]
    ours = (path / "summary.json").exists() or (path / ".partial").is_dir() or (
        command == "score" and any(path.glob("*/.scored.json")))  # score's stamped sets: a run stopped by a SIGKILL
    if theirs and not ours:
        raise ConfigError(f"{command}: --out {path} holds {', '.join(theirs)}, which {command} writes, but no "
                          f"summary.json of an earlier run; give a folder of its own")
    return path


def check_parents(path: Path, command: str, file: bool = False) -> None:
    r"""Refuses an ``--out`` ``path`` that is a broken symbolic link or lies under a file: making it said 'File
    exists' (of the link, or of the file). ``file``: ``path`` is a file to write, through a link: a link to one not
    made yet is taken (a ``latest.md`` linked to where the results will be), the file it names then checked."""
    if path.is_symlink() and not path.exists():
        if not file:
            raise ConfigError(f"{command}: --out {path} is a broken symbolic link (to {os.readlink(path)}); remove it "
                              "or give another folder")
        path = Path(os.path.realpath(path))
        if path.is_symlink():  # realpath stops at a loop ('l -> l'): writing said 'Too many levels of links'
            raise ConfigError(f"{command}: --out {path} is a link that leads back to itself (a loop); remove it")
    under = next((parent for parent in path.parents if parent.exists() and not parent.is_dir()), None)
    if under is not None:
        raise ConfigError(f"{command}: --out {path}: {under} is a file, not a folder")


def check_not_inputs(folder: Path, what: str) -> None:
    r"""Refuses ``folder`` as where ``what`` (the figures, the report, the phones tables) go when it is a scored set's
    folder or a Kaldi data dir: ``plot --out`` wrote 27 figures in among a set's scores (``report`` refused that
    folder), and both went in among a data dir's tables."""
    kind = ("a scored set's folder" if (folder / "utt_scores.tsv").exists() else
            "a Kaldi data dir" if is_data_dir(folder) else None)
    if kind:
        raise ConfigError(f"--out {folder} is {kind}; give {what} a folder of their own")


def is_data_dir(path: Path) -> bool:
    r"""``path`` holds a Kaldi data dir's tables (an output written there goes in among them)."""
    return any((path / table).exists() for table in ("utt2spk", "wav.scp", "feats.scp"))


def check_set_folders(out: Path, names: Iterable[str], command: str) -> None:
    r"""Each set's folder ``out/<name>`` is not a Kaldi data dir, an experiment dir or a command's output folder:
    ``--out`` the folder of the data dirs scored wrote every set's tables, latents and arks in among its Kaldi files
    (exit 0), and ``--out exp`` a set named as a model's folder in among its final.pt and config.yaml."""
    for name in names:
        folder = out / name
        what = ("a Kaldi data dir (--out holds the data dirs)" if is_data_dir(folder) else
                "an experiment dir of 'flowaccent train'" if (folder / "final.pt").exists()
                or (folder / "checkpoints").is_dir() else
                "the output folder of another command (its summary.json)" if (folder / "summary.json").exists()
                else None)
        if what:
            raise ConfigError(f"{command}: set '{name}' would be written into {folder}, {what}; give --out a folder "
                              "of its own, or the set another name (NAME=DATA_DIR)")


@contextlib.contextmanager
def removed_on_failure(
    out: Path, names: Iterable[str], files: Iterable[str], complete: Callable[[Path], bool] | None = None
) -> Iterator[None]:
    r"""On an error or Ctrl-C in the block, removes the set folders ``out/<name>`` it made (those not there
    before it), but for those ``complete`` says are, and ``out/<file>`` of ``files`` (the command's summary files,
    which it removed before the block), then lets the error go on: no half-made set is left beside an earlier
    run's complete ones."""
    fresh = [out / name for name in names if not (out / name).exists()]
    try:
        yield
    except BaseException:
        for path in fresh:
            if complete is None or not complete(path):
                shutil.rmtree(path, ignore_errors=True)
        for name in files:
            (out / name).unlink(missing_ok=True)
        raise
