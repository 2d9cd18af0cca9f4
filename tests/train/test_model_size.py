r"""A model too large for the memory here is refused in one line before it is built (flowaccent.train.model_size):
``--model.hidden 1000000000`` died in a traceback asking torch for 240 GB, ``--check`` too."""

from __future__ import annotations

import pytest

from flowaccent.cli.main import main
from flowaccent.errors import ConfigError
from flowaccent.flows.realnvp import ModelConfig, build_realnvp
from flowaccent.train.model_size import available_memory, check_model_size, num_weights


@pytest.mark.parametrize("mask", ["alternating", "random"])
@pytest.mark.parametrize("blocks, hidden, dim, layers, context", [
    (2, 16, 8, 2, 0), (3, 32, 7, 1, 0), (10, 512, 120, 2, 0), (5, 8, 441, 3, 2), (1, 4, 5, 1, 3)])
def test_the_weights_counted_are_the_matrices(blocks, hidden, dim, layers, context, mask):
    config = ModelConfig(num_blocks=blocks, hidden=hidden, mask=mask, num_layers=layers, context_dim=context)
    matrices = sum(p.numel() for p in build_realnvp(config, dim).parameters() if p.dim() == 2)
    assert num_weights(config, dim) == matrices


def test_a_model_past_the_memory_is_refused():
    config = ModelConfig(num_blocks=10, hidden=512)
    weights = num_weights(config, 440)
    check_model_size(config, 440, available=weights * 16)  # four float32 copies fit
    with pytest.raises(ConfigError, match=r"model: num_blocks 10 x hidden 512 on 440-d frames make [0-9,]+ weights, "
                                          r"and training holds 4 copies of them \(0\.1 GiB\), more than the 0\.1 GiB "
                                          r"of memory available here; give a smaller --model.hidden"):
        check_model_size(config, 440, available=weights * 16 - 1)
    check_model_size(config, 440, copies=1, available=weights * 4)  # built here, trained on a GPU
    assert available_memory() is None or available_memory() > 0


@pytest.mark.parametrize("field", ["num_blocks", "num_layers"])
def test_a_huge_count_of_blocks_or_layers_is_counted_at_once(field):
    r"""The count listed each block's and each layer's widths: ``--model.num-blocks 1e12`` hung in the size check
    itself, ``--model.num-layers 1e9`` took all the memory (killed)."""
    config = ModelConfig(**{field: 10**12})
    other = ModelConfig(**{field: 1})
    per = num_weights(ModelConfig(**{field: 2}), 120) - num_weights(other, 120)  # one more block, or layer
    assert num_weights(config, 120) == num_weights(other, 120) + (10**12 - 1) * per
    with pytest.raises(ConfigError, match=r"weights, and training holds 4 copies of them"):
        check_model_size(config, 120)


def test_train_and_its_check_refuse_it_in_one_line(gaussian_dir, tmp_path, capsys):
    path, _ = gaussian_dir
    for check in (["--check"], []):
        assert main(["train", "--exp", str(tmp_path / "e"), *check, "--model.hidden", "1000000000", "--features.cmvn",
                     "utt", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "weights, and training holds 4 copies of them" in err, err
        assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())
    # 4e12-d frames: counting their weights built a (dim,) order per block, 1.6e14 bytes asked of torch (a traceback)
    for option in ("--features.deltas", "--features.splice"):
        assert main(["train", "--exp", str(tmp_path / "e"), "--check", option, "1000000000000", "--features.cmvn",
                     "utt", str(path)]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err and "-d frames make" in err and "weights, and training holds 4" in err, err
