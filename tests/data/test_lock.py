r"""flowaccent.data.lock: one holder of a folder's lock at a time."""

from __future__ import annotations

import os

from flowaccent.data import lock


def test_a_lock_file_removed_by_its_holder_as_it_let_go_is_not_held_by_name(tmp_path, monkeypatch):
    r"""A run that wrote nothing removes its lock file while it holds it: a second run that had opened the file
    before, and locked it after, held a file of no name, and a third (a new file of that name) held the lock too."""
    path = tmp_path / ".out.lock"
    flock, calls = lock.fcntl.flock, []

    def removed_first(fd, operation):  # the first holder lets go, its file removed, between open and flock
        calls.append(fd)
        if len(calls) == 1:
            path.unlink()
        return flock(fd, operation)

    monkeypatch.setattr(lock.fcntl, "flock", removed_first)
    fd, held = lock.locked_file(path, "busy", tmp_path)
    try:
        assert held and len(calls) == 2  # opened again: the file of the name is the one locked
        assert os.fstat(fd).st_ino == os.stat(path).st_ino
    finally:
        os.close(fd)


def test_a_file_system_whose_stat_never_names_the_open_file_does_not_loop(tmp_path, monkeypatch):
    r"""Where ``stat`` and ``fstat`` never agree (an odd FUSE mount), the lock is taken after a few opens, as before
    the check, not looked for for ever."""
    opened = []
    open_ = os.open

    def counting(*args, **kwargs):
        opened.append(args[0])
        return open_(*args, **kwargs)

    monkeypatch.setattr(lock, "_same_file", lambda fd, path: False)
    monkeypatch.setattr(lock.os, "open", counting)
    fd, held = lock.locked_file(tmp_path / ".out.lock", "busy", tmp_path)
    os.close(fd)
    assert held and len(opened) == lock._ATTEMPTS
