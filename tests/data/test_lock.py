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
