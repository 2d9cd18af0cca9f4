r"""The ``flowaccent`` command and its sub-commands.

Each sub-command lives in its own module of this package and exposes
``add_parser(subparsers)`` and ``run(args) -> int``. Errors a user can cause
(:class:`~flowaccent.errors.FlowAccentError`) end the command with one line on
stderr and exit status 1; no traceback. SIGTERM (``kill PID``, Slurm's preemption and time limit) and
SIGHUP (the terminal closed: a dropped ssh session) stop a command as Ctrl-C does: temporary files are
removed and ``train`` writes its checkpoint (SIGHUP killed it, its progress since the last checkpoint lost).
Then the program (:func:`entry`) dies by the signal, as a shell expects of a command it sent Ctrl-C
to: a shell loop or script stops there, and ``$?`` is 130 (SIGINT), 143 (SIGTERM) or 129 (SIGHUP).
:func:`main`, called from Python, returns those numbers instead (the stops: :mod:`flowaccent.cli._stops`; what a
torchrun worker says, once for its run: :mod:`flowaccent.cli._group`).
"""

from __future__ import annotations

import argparse
import atexit
import errno
import importlib
import os
import re
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

from flowaccent import __version__, torchrun
from flowaccent.allocator import tune_allocator
from flowaccent.cli import _group, _stops
from flowaccent.errors import FlowAccentError
from flowaccent.signals import STOPS, forget, owned

#: Sub-command modules, in the order ``--help`` lists them, with their one-line summaries.
COMMANDS = {
    "synth": "synthesise the demo corpus (needs flowaccent[demo])",
    "fbank": "compute log mel filterbanks and CMVN stats for a data dir",
    "cmvn": "per-speaker CMVN stats of a data dir's features (Kaldi's compute_cmvn_stats.sh)",
    "validate": "check a Kaldi data dir against Kaldi's rules",
    "fixdir": "keep the utterances every table of a data dir lists, less a list's (Kaldi's fix_data_dir.sh)",
    "train": "train a (DNF-conditioned) RealNVP on Kaldi features",
    "score": "score corpora with a trained flow: LogLL, LogP, LogDet, skew/kurtosis, AUCs, correlations",
    "plot": "only the figures (PNG and PDF) of 'flowaccent report'",
    "report": "figures, a self-contained report.html and report.md from an experiment and its scores",
    "compare": "several models' scores side by side: a table per value, rows the models, columns the sets",
    "phones": "each scored set's LogLL by phone of a CTM (Kaldi's alignments), against the reference set's",
    "blurmask": "learn per-cell blur masks of a few utterances and evaluate them by deletion curves",
}


#: A negative number as Python's ``float`` reads it (``-400``, ``-.5``, ``-4e2``, ``-1E-3``, ``-inf``, ``-nan``).
_NEGATIVE_NUMBER = re.compile(r"^-(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$", re.IGNORECASE)


class _Parser(argparse.ArgumentParser):
    r"""argparse's parser, whose usage errors are one line (``train``'s usage alone is 32 lines before the error,
    which a recipe's log then showed last): the error and where the usage is. A negative number in exponent form
    (``--high-freq -4e2``) is a value, as ``-400`` is: argparse took it for an option ('expected one argument')."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = _NEGATIVE_NUMBER  # argparse's: r'^-\d+$|^-\d*\.\d+$'

    def error(self, message: str) -> NoReturn:
        _group.say_before_the_group(f"{self.prog}: error: {message} (usage: {self.prog} --help)")
        self.exit(2)

    def _print_message(self, message: str, file=None) -> None:  # --help, --version: under torchrun, by rank 0 alone
        place = torchrun.place()  # (each rank printed them)
        if place is None or place[0] == 0:
            super()._print_message(message, file)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    r"""The parser of every sub-command; with ``only``, just that one is built in full (the
    others get a summary line), so a command imports no more than it needs (torch, say);
    ``only=""``: none in full, the summaries ``flowaccent --help`` lists (1-2 s sooner than
    importing train's and score's options, which import torch)."""
    parser = _Parser(
        prog="flowaccent",
        description="Normalizing-flow accent analysis on Kaldi features.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"flowaccent {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        if only is None or name == only:
            module = importlib.import_module(f"flowaccent.cli.{name}")
            command = module.add_parser(subparsers)
            command.set_defaults(run=module.run)
            command.allow_abbrev = False  # --train.epoch set train.epochs silently: a typo, not a prefix
        else:
            subparsers.add_parser(name, help=summary)
    return parser


#: What the system says when an output cannot be written: one line, not a traceback (as is any OS error naming a file).
_WRITE_ERRORS = (errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EDQUOT, errno.EPERM)


def main(argv: list[str] | None = None) -> int:
    r"""Runs one sub-command; returns the exit status."""
    tune_allocator()
    forget()
    _stops.clear()
    if workers := sys.modules.get("flowaccent.workers"):  # an earlier pool's, in this process: not this command's
        workers.ABORTED.clear()
    main_thread = threading.current_thread() is threading.main_thread()
    own = [s for s in STOPS[1:] if main_thread and signal.getsignal(s) == signal.SIG_DFL]  # a caller's stays
    for number in own:
        signal.signal(number, _stops.on_stop_signal)
    try:
        with owned(own):
            return _main(argv)
    except KeyboardInterrupt:  # in a torchrun worker whose command has ended (saying its error, or ending the group):
        if not (torchrun.joined() or _stops.STOPPED_IN_GROUP):  # torchrun's SIGTERM, sent once another process has
            raise  # exited, which says why; it was a traceback of this one's
        from flowaccent.train.distributed import finish

        finish(128 + (_stops.TERMINATED[0] if _stops.TERMINATED else signal.SIGINT))
        raise  # not reached
    finally:
        for number in own:
            signal.signal(number, signal.SIG_DFL)


def entry() -> NoReturn:
    r"""The program ``flowaccent`` (its console script and ``python -m flowaccent``): :func:`main`, and a
    command that a Ctrl-C or SIGTERM stopped then dies by that signal. It exited with status 130 instead,
    which a shell takes for a command that handled the Ctrl-C and chose to go on: ``for d in ...; do
    flowaccent fbank $d; done`` went on to the next folder after each Ctrl-C. (A torchrun worker still exits
    with 130 or 143, :func:`flowaccent.train.distributed.finish`: torchrun, not a shell, reads its status.)

    A stop signal that comes once the command has returned, while Python exits (torch's, tqdm's and threading's
    exit handlers: half a second after ``train``'s last line), is held to the end, then said and died by: a
    Ctrl-C there was a ``KeyboardInterrupt`` traceback out of an exit handler and status 0, and a shell loop
    went on. (Not in a torchrun worker, which torchrun's SIGTERM ends as its group's run ends: it exits with its
    own status.)"""
    late: list[int] = []
    atexit.register(_stopped_late, late)  # registered first, so run last
    code = main()
    if _stops.STOPPED_BY:
        _stops.die_by(_stops.STOPPED_BY[0])
    if threading.current_thread() is threading.main_thread() and torchrun.place() is None:
        for number in STOPS:
            signal.signal(number, lambda signum, frame: late.append(signum))
    sys.exit(code)


def _stopped_late(late: list[int]) -> None:
    r"""At exit, after every other exit handler: where a stop signal came after the command returned (``late``),
    says so and dies by it (the command's work is done, its outputs whole)."""
    if not late:
        return
    try:
        print(f"flowaccent: {_stops.STOPPED_HOW[late[0]]} while exiting, after the command had finished",
              file=sys.stderr, flush=True)
    except OSError:  # the terminal is gone (SIGHUP)
        pass
    _stops.die_by(late[0])


#: Arguments that name files or folders (data dirs also as ``NAME=DIR``). The shell leaves a ``~`` after ``=`` as
#: it is (``--out=~/x``; ``native=~/x`` in ``sh``).
_PATH_OPTIONS = ("exp", "out", "scores", "config", "checkpoint", "data", "data_dirs", "data_dir", "out_dir", "ctm",
                 "phones", "blurmask", "exclude", "utt_list")

#: Arguments that name a set or class: empty, each meant its default (``score --reference ''``: the first set).
_NAME_OPTIONS = ("reference", "native_class")


_POSITIONAL = {"data_dirs": "a DATA_DIR", "data_dir": "DATA_DIR", "out_dir": "OUT_DIR", "ctm": "a CTM"}


def _empty_path(args: argparse.Namespace) -> str | None:
    r"""The first path (or name) argument given as an empty string (``--exp "$UNSET"``: train ran into the current
    folder, rewriting a ``config.yaml`` and ``data.txt`` there; ``--exclude ''`` read the current folder, ``--reference
    ''`` took the default), named as the command line spells it; else None."""
    for name in (*_PATH_OPTIONS, *_NAME_OPTIONS):
        value = getattr(args, name, getattr(args, f"cfg__{name}", None))  # a config field's option: cfg__NAME
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and not text.strip():
                return _POSITIONAL.get(name, f"--{name.replace('_', '-')}")
    return None


def _expand_home(args: argparse.Namespace) -> None:
    r"""A leading ``~`` or ``~user`` of a path (or of ``DIR`` in ``NAME=DIR``) is the home folder, as the shell
    makes it of ``--out ~/x``: not a folder named ``~`` in the current one."""

    def home(text: str) -> str:
        name, _, path = text.rpartition("=") if "=~" in text else ("", "", text)
        return f"{name}={os.path.expanduser(path)}" if name else os.path.expanduser(path)

    for name in _PATH_OPTIONS:
        value = getattr(args, name, None)
        if isinstance(value, str):
            setattr(args, name, home(value))
        elif isinstance(value, list):
            setattr(args, name, [home(v) if isinstance(v, str) else v for v in value])


def _where(error: OSError, args: argparse.Namespace) -> str:
    r"""Where an output could not be written, for its line: the file the system named, as the user knows it (the file
    or folder a hidden temporary one was to become, :func:`_meant`), else the command's output folder (fbank's,
    cmvn's and fixdir's: the data dir, where they write their tables and arks; synth's OUT_DIR)."""
    folder = (getattr(args, "out", None) or getattr(args, "exp", None) or getattr(args, "data_dir", None)
              or getattr(args, "out_dir", None))
    return f"{_meant(error.filename)}: " if error.filename else f"writing into {folder}: " if folder else ""


#: A hidden temporary name: ``.NAME.tmp.PID`` (flowaccent.data.atomic), ``.NAME.tmp-XXXXXXXX`` (synth's folder),
#: ``.NAME.part.PID`` (a stopped run's).
_TEMPORARY = re.compile(r"\.(?P<name>.+)\.(?:tmp|part)[-.][^.]+")


def _meant(filename: str | bytes | int) -> str:
    r"""``filename`` with each hidden temporary name in it (:data:`_TEMPORARY`) as the name it was to become, and a
    folder's hidden lock file (``.figures.lock``) as the folder: 'synth /ro/out' said '/ro/.out.tmp-8qadta9v:
    Read-only file system', a name the user never gave."""
    path = Path(os.fsdecode(filename)) if not isinstance(filename, int) else Path(str(filename))
    if path.name.startswith(".") and path.name.endswith(".lock"):
        path = path.parent
    return str(Path(*[m["name"] if (m := _TEMPORARY.fullmatch(part)) else part for part in path.parts]))


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    try:  # imports torch: a Ctrl-C here is one line too
        parser = build_parser(command if command in COMMANDS else "")  # no command: its summaries are enough
        args, extra = parser.parse_known_args(argv)
        if extra:  # the command's error, not the top parser's ('flowaccent: error: ... (usage: flowaccent --help)')
            sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    except KeyboardInterrupt:
        return _stops.interrupted("flowaccent")
    if empty := _empty_path(args):
        _group.say_before_the_group(f"flowaccent {args.command}: error: {empty} is empty (an unset shell variable?) "
                                    f"(usage: flowaccent {args.command} --help)")
        return 2
    if started := _group.started_by_torchrun(args.command):
        return started
    _expand_home(args)
    args.command_line = "flowaccent " + shlex.join(argv)
    try:
        code = int(args.run(args) or 0)
    except FlowAccentError as error:
        message = " ".join(str(error).split("\n"))
        if args.command != "train":  # train's 'train: epochs must be >= 1' names the config section (--train.epochs)
            message = message.removeprefix(f"{args.command}: ")  # the library's own prefix, for API users: said once
        _group.say_error(f"flowaccent {args.command}: error: {message}")
        code = 1
    except OSError as error:
        if error.errno not in _WRITE_ERRORS and not error.filename:  # a path the user gave: one line
            raise
        _group.say_error(f"flowaccent {args.command}: error: {_where(error, args)}{error.strerror}")
        code = 1
    except RuntimeError as error:  # a torchrun worker whose peer is gone: one line, not gloo's 50
        reason = _group.peer_gone(error)
        if reason is None:
            raise
        _group.say_peer_gone(f"flowaccent {args.command}: error: another process of this run is gone ({reason}); "
                             "its own output says why")
        code = 1
    except KeyboardInterrupt:
        code = _stops.interrupted(f"flowaccent {args.command}")
        workers = sys.modules.get("flowaccent.workers")
        if workers and workers.ABORTED.is_set():  # a second Ctrl-C killed the workers: no waiting for them at exit
            _stops.die_by(_stops.STOPPED_BY[0])
    if torchrun.joined() or _stops.STOPPED_IN_GROUP:  # a torchrun worker of a group: end it as one (distributed.finish)
        from flowaccent.train.distributed import finish

        finish(code)
    return code


if __name__ == "__main__":
    entry()
