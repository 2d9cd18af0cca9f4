r"""Progress bars (flowaccent.progress): redrawn as tqdm's on a terminal, seldom into a file or a pipe (a recipe's
log filled with ten redraws a second)."""

from __future__ import annotations

import io
import os

import pytest

from flowaccent.progress import PIPED_INTERVAL, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream, interval", [(Terminal(), 0.1), (io.StringIO(), PIPED_INTERVAL)])
def test_a_bar_into_a_file_is_redrawn_seldom(stream, interval, monkeypatch):
    with progress_bar(total=10, file=stream) as bar:
        assert bar.mininterval == interval
    monkeypatch.setattr("sys.stderr", stream)
    assert progress_bar(total=1, mininterval=0.5).mininterval == 0.5  # given: kept


def test_many_steps_into_a_log_draw_a_few_lines(tmp_path):
    with open(tmp_path / "log", "w") as log, progress_bar(total=100000, file=log, desc="x") as bar:
        for _ in range(100000):
            bar.update()
    drawn = (tmp_path / "log").read_text()
    assert drawn.count("\r") <= 3 and "100000/100000" in drawn  # the start, the end (and one a minute)
    assert os.path.getsize(tmp_path / "log") < 300
