r"""The ``flowaccent`` command and its sub-commands.

Each sub-command lives in its own module of this package and exposes
``add_parser(subparsers)`` and ``run(args) -> int``. Errors a user can cause
(:class:`~flowaccent.errors.FlowAccentError`) end the command with one line on
stderr and exit status 1; no traceback. SIGTERM (``kill PID``, Slurm's preemption and time limit) and
SIGHUP (the terminal closed: a dropped ssh session) stop a command as Ctrl-C does: temporary files are
removed and ``train`` writes its checkpoint (SIGHUP killed it, its progress since the last checkpoint lost).
Then the program (:func:`entry`) dies by the signal, as a shell expects of a command it sent Ctrl-C
to: a shell loop or script stops there, and ``$?`` is 130 (SIGINT), 143 (SIGTERM) or 129 (SIGHUP).
:func:`main`, called from Python, returns those numbers instead.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import shlex
import signal
import sys
import threading
import time
from typing import NoReturn

from flowaccent import __version__, torchrun
from flowaccent.allocator import tune_allocator
from flowaccent.errors import FlowAccentError
from flowaccent.signals import STOPS, forget, owned, repeated

#: Sub-command modules, in the order ``--help`` lists them, with their one-line summaries.
COMMANDS = {
    "synth": "synthesise the demo corpus (needs flowaccent[demo])",
    "fbank": "compute log mel filterbanks and CMVN stats for a data dir",
    "validate": "check a Kaldi data dir against Kaldi's rules",
    "train": "train a (DNF-conditioned) RealNVP on Kaldi features",
    "score": "score corpora with a trained flow: LogLL, LogP, LogDet, skew/kurtosis, AUCs, correlations",
    "plot": "only the figures (PNG and PDF) of 'flowaccent report'",
    "report": "figures, a self-contained report.html and report.md from an experiment and its scores",
    "blurmask": "learn per-cell blur masks of a few utterances and evaluate them by deletion curves",
}


class _Parser(argparse.ArgumentParser):
    r"""argparse's parser, whose usage errors are one line (``train``'s usage alone is 32 lines before the error,
    which a recipe's log then showed last): the error and where the usage is."""

    def error(self, message: str) -> NoReturn:
        _say_before_the_group(f"{self.prog}: error: {message} (usage: {self.prog} --help)")
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


#: The signal of :data:`~flowaccent.signals.STOPS` other than SIGINT that stopped the command (its exit status is then
#: 128 + it, not Ctrl-C's 130).
_TERMINATED: list[int] = []
#: The signal that stopped the command, once it has cleaned up: :func:`entry` dies by it.
_STOPPED_BY: list[int] = []
#: Not empty once a stop signal has reached a torchrun worker of a process group (:func:`_interrupted`): it ends as
#: one (:func:`flowaccent.train.distributed.finish`), also where it has left the group since.
_STOPPED_IN_GROUP: list[bool] = []
#: What a stopped command says of each signal.
_STOPPED_HOW = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hung up (SIGHUP)"}


def _on_stop_signal(signum, frame) -> None:
    if repeated(signum):  # the same SIGTERM twice (a scheduler's and a recipe's): the first's cleanup goes on
        return
    _TERMINATED.append(signum)
    raise KeyboardInterrupt  # unwinds as Ctrl-C does: temporary files removed, checkpoints written


#: What the system says when an output cannot be written: one line, not a traceback (as is any OS error naming a file).
_WRITE_ERRORS = (errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EDQUOT, errno.EPERM)


def main(argv: list[str] | None = None) -> int:
    r"""Runs one sub-command; returns the exit status."""
    tune_allocator()
    forget()
    _TERMINATED.clear()
    _STOPPED_BY.clear()
    _STOPPED_IN_GROUP.clear()
    if workers := sys.modules.get("flowaccent.workers"):  # an earlier pool's, in this process: not this command's
        workers.ABORTED.clear()
    main_thread = threading.current_thread() is threading.main_thread()
    own = [s for s in STOPS[1:] if main_thread and signal.getsignal(s) == signal.SIG_DFL]  # a caller's stays
    for number in own:
        signal.signal(number, _on_stop_signal)
    try:
        with owned(own):
            return _main(argv)
    except KeyboardInterrupt:  # in a torchrun worker whose command has ended (saying its error, or ending the group):
        if not (_joined() or _STOPPED_IN_GROUP):  # torchrun's SIGTERM, sent once another process has exited, which
            raise  # says why; it was a traceback of this one's
        from flowaccent.train.distributed import finish

        finish(128 + (_TERMINATED[0] if _TERMINATED else signal.SIGINT))
        raise  # not reached
    finally:
        for number in own:
            signal.signal(number, signal.SIG_DFL)


def entry() -> NoReturn:
    r"""The program ``flowaccent`` (its console script and ``python -m flowaccent``): :func:`main`, and a
    command that a Ctrl-C or SIGTERM stopped then dies by that signal. It exited with status 130 instead,
    which a shell takes for a command that handled the Ctrl-C and chose to go on: ``for d in ...; do
    flowaccent fbank $d; done`` went on to the next folder after each Ctrl-C. (A torchrun worker still exits
    with 130 or 143, :func:`flowaccent.train.distributed.finish`: torchrun, not a shell, reads its status.)"""
    code = main()
    if _STOPPED_BY:
        _die_by(_STOPPED_BY[0])
    sys.exit(code)


def _die_by(number: int) -> NoReturn:
    r"""Ends the process by signal ``number`` at once (its cleanup is done; what Python would still do at exit,
    such as waiting for threads, is skipped, as with ``os._exit``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(number, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
    os.kill(os.getpid(), number)
    os._exit(128 + number)  # not reached


#: Arguments that name files or folders (data dirs also as ``NAME=DIR``). The shell leaves a ``~`` after ``=`` as
#: it is (``--out=~/x``; ``native=~/x`` in ``sh``).
_PATH_OPTIONS = ("exp", "out", "scores", "config", "checkpoint", "data", "data_dirs", "data_dir", "out_dir")


_POSITIONAL = {"data_dirs": "a DATA_DIR", "data_dir": "DATA_DIR", "out_dir": "OUT_DIR"}


def _empty_path(args: argparse.Namespace) -> str | None:
    r"""The first path argument given as an empty string (``--exp "$UNSET"``: train ran into the current folder,
    rewriting a ``config.yaml`` and ``data.txt`` there), named as the command line spells it; else None."""
    for name in _PATH_OPTIONS:
        value = getattr(args, name, None)
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


def _interrupted(who: str) -> int:
    r"""Says a Ctrl-C, SIGTERM or SIGHUP stopped ``who`` and returns its exit status (130, 143 or 129). In a torchrun
    run rank 0 says it and leaves it in the run's store; another rank leaves the group (so that a rank 0 waiting for it
    in a collective hears its own signal) and says it, with its rank, only where rank 0 left no line there
    (:func:`flowaccent.train.distributed.said_once`): a terminal's Ctrl-C reaches every worker, and
    torchrun's SIGTERM every one still running once one has ended, which says why (each rank said it; one behind
    rank 0 added 'terminated' to the error rank 0 had said), but a signal to one worker alone (a ``kill``, one
    machine's terminal) was said by none, and rank 0's 'another process of this run is gone; its own output says
    why' pointed at nothing. Before the processes have joined, another rank says nothing."""
    _STOPPED_BY[:] = [_TERMINATED[0] if _TERMINATED else signal.SIGINT]
    line: str | None = f"{who}: {_STOPPED_HOW[_STOPPED_BY[0]]}"
    if _joined():
        from flowaccent.train import distributed

        _STOPPED_IN_GROUP.append(True)  # first: a signal from here on ends it as one of the group too
        distributed.mark_said(line)  # rank 0's, for the others
        line = distributed.said_once(line, any_line=True, leave=True)
    elif torchrun.rank():
        line = None
    try:
        if line is not None:
            print(line, file=sys.stderr, flush=True)
    except OSError:  # the terminal is gone (SIGHUP): nowhere to say it
        pass
    return 128 + _STOPPED_BY[0]


def _joined() -> bool:
    r"""Whether this process has joined a torchrun run's process group (torch's own check: a module left half
    imported by a Ctrl-C is not asked, nor imported again)."""
    dist = sys.modules.get("torch.distributed")
    return dist is not None and torchrun.place() is not None and dist.is_available() and dist.is_initialized()


def _peer_gone(error: RuntimeError) -> str | None:
    r"""In a torchrun worker, the backend's reason where ``error`` says another process is gone; else None."""
    if not _joined():
        return None
    from flowaccent.train.distributed import peer_gone

    return peer_gone(error)


#: How long a torchrun worker other than rank 0 waits, with an error of the command line, for torchrun to stop it
#: (:func:`_say_before_the_group`).
RANK_0_SAYS_S = 10.0


def _say_before_the_group(line: str, wait_s: float = RANK_0_SAYS_S) -> None:
    r"""Prints an error ``line`` met before the run's processes have joined (the command line's, a config's): every
    torchrun worker reads the same arguments, and each said it, once per rank. Rank 0 says it; another rank waits
    for torchrun to stop it, as torchrun does once rank 0 has exited with it (where rank 1 exited first, torchrun
    stopped rank 0 before it had said why), and says it with its rank where that does not come (rank 0 did not
    meet it)."""
    place = torchrun.place()
    if place is None or place[0] == 0:
        print(line, file=sys.stderr)
        return
    try:
        time.sleep(wait_s)
    except KeyboardInterrupt:  # torchrun's SIGTERM: rank 0 has said it; a Ctrl-C: it says nothing of this rank's
        if _TERMINATED:
            return
    print(torchrun.with_rank(line, *place), file=sys.stderr)


def _say_error(line: str) -> None:
    r"""Prints an error ``line``; in a torchrun worker once for the run, where every rank hit the same
    (:func:`flowaccent.train.distributed.said_once`, or before the processes joined :func:`_say_before_the_group`),
    not once per rank."""
    if not _joined():
        _say_before_the_group(line)
        return
    from flowaccent.train import distributed

    said = distributed.said_once(line)
    if said is not None:
        print(said, file=sys.stderr, flush=True)
    distributed.mark_said(line)


#: The commands that share their work among the processes torchrun starts.
SHARED = ("train", "score")


def _started_by_torchrun(command: str) -> int:
    r"""2 where ``command`` is not one of :data:`SHARED` and ``torchrun`` started several copies of it (``WORLD_SIZE``
    > 1); else 0. Each copy of another command would do the whole of it: two copies of ``score``, before it shared
    its sets, ran into one ``--out``, one of them refused as busy ('being written by another flowaccent command now')
    and torchrun then stopped the other. Said once (:func:`_say_before_the_group`)."""
    place = torchrun.place()
    if command in SHARED or place is None:  # one process (a WORLD_SIZE left in the shell: not torchrun)
        return 0
    world = place[1]
    _say_before_the_group(f"flowaccent {command}: error: started by torchrun as {world} processes "
                          f"(WORLD_SIZE={world}), each of which would do the whole work: run it as one process, "
                          f"without torchrun (only {' and '.join(SHARED)} share their work among processes)")
    return 2


def _where(error: OSError, args: argparse.Namespace) -> str:
    r"""Where an output could not be written, for its line: the file the system named, else the command's output
    folder."""
    folder = getattr(args, "out", None) or getattr(args, "exp", None)
    return f"{error.filename}: " if error.filename else f"writing into {folder}: " if folder else ""


def _say_peer_gone(line: str) -> None:
    r"""Prints a torchrun worker's ``line`` that another process of the run is gone: rank 0 with its rank; another
    rank nothing where rank 0 left a line (rank 0 is the one gone and said why; it was said after rank 0's stop)."""
    if torchrun.rank():
        from flowaccent.train.distributed import said_once

        said = said_once(line, any_line=True)
    else:
        said = torchrun.with_rank(line, *torchrun.place())
    if said is not None:
        print(said, file=sys.stderr)


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
        return _interrupted("flowaccent")
    if empty := _empty_path(args):
        _say_before_the_group(f"flowaccent {args.command}: error: {empty} is empty (an unset shell variable?) (usage: "
                              f"flowaccent {args.command} --help)")
        return 2
    if started := _started_by_torchrun(args.command):
        return started
    _expand_home(args)
    args.command_line = "flowaccent " + shlex.join(argv)
    try:
        code = int(args.run(args) or 0)
    except FlowAccentError as error:
        message = " ".join(str(error).split("\n"))
        if args.command != "train":  # train's 'train: epochs must be >= 1' names the config section (--train.epochs)
            message = message.removeprefix(f"{args.command}: ")  # the library's own prefix, for API users: said once
        _say_error(f"flowaccent {args.command}: error: {message}")
        code = 1
    except OSError as error:
        if error.errno not in _WRITE_ERRORS and not error.filename:  # a path the user gave: one line
            raise
        _say_error(f"flowaccent {args.command}: error: {_where(error, args)}{error.strerror}")
        code = 1
    except RuntimeError as error:  # a torchrun worker whose peer is gone: one line, not gloo's 50
        reason = _peer_gone(error)
        if reason is None:
            raise
        _say_peer_gone(f"flowaccent {args.command}: error: another process of this run is gone ({reason}); its own "
                       "output says why")
        code = 1
    except KeyboardInterrupt:
        code = _interrupted(f"flowaccent {args.command}")
        workers = sys.modules.get("flowaccent.workers")
        if workers and workers.ABORTED.is_set():  # a second Ctrl-C killed the workers: no waiting for them at exit
            _die_by(_STOPPED_BY[0])
    if _joined() or _STOPPED_IN_GROUP:  # a torchrun worker of a process group: end it cleanly (distributed.finish)
        from flowaccent.train.distributed import finish

        finish(code)
    return code


if __name__ == "__main__":
    entry()
