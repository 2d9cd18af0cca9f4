r"""Atomic writes and links: a name is always the old file or the whole new one."""

from __future__ import annotations

import os

from flowaccent.data import atomic
from flowaccent.data.atomic import atomic_link, atomic_path, atomic_write_text


def test_a_link_names_the_same_file_and_later_writes_replace_one_name_only(tmp_path):
    best, last = tmp_path / "best.pt", tmp_path / "last.pt"
    atomic_write_text(last, "old last")
    atomic_write_text(best, "epoch 2")
    atomic_link(best, last)  # replaces the old last.pt
    assert os.path.samefile(best, last) and last.read_text() == "epoch 2"
    atomic_write_text(last, "epoch 3")  # a later epoch that is not better
    assert last.read_text() == "epoch 3" and best.read_text() == "epoch 2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]  # no temporary left


def test_without_hard_links_it_copies(tmp_path, monkeypatch):
    def no_links(*args):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(atomic.os, "link", no_links)
    best, last = tmp_path / "best.pt", tmp_path / "last.pt"
    with atomic_path(best) as tmp:
        tmp.write_bytes(b"\x00checkpoint" * 1000)
    atomic_link(best, last)
    assert last.read_bytes() == best.read_bytes() and not os.path.samefile(best, last)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "last.pt"]
