r"""``flowaccent score`` under ``torchrun``: every process scores a share of each set, rank 0 joins the shares.

Rank 0 runs the command as one process does (the output lock, the checks, the GMM baseline, ``--resume``, the
summary). For each set it scores, it sends the set's name and folder to the other ranks (:func:`serve`); every
process scores one contiguous share of the set's utterances (cut by frames where ``utt2num_frames`` gives them, else
by count: :func:`share_of`) into ``SET/.share.RANK/``, and rank 0 joins the shares into the set's files
(:func:`join`). The tables, the ark and the utterance means are then one process's, in its order, up to the
rounding of batches cut elsewhere; the latent sample is another uniform sample of the same size: each share keeps
its own (seeded by the seed and its rank), and the joined one takes from each a number of rows drawn from the
multivariate hypergeometric distribution of a uniform sample of all frames.

The processes talk over gloo, also on GPUs: only jobs and outcomes travel, the scores go through files, so
``--out`` must be a folder every process sees (on several machines, a shared file system: a rank 0 that cannot
see a share says so).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from flowaccent import torchrun
from flowaccent.data.atomic import atomic_write_text, temporary_name
from flowaccent.data.datadir import UNUSED_BY_MODELS, DataDir, load_data_dir
from flowaccent.errors import ConfigError, FlowAccentError
from flowaccent.score.config import ScoreConfig
from flowaccent.score.scorer import save_npy, score_dir
from flowaccent.train.interrupts import HeldSignals

#: The tables of a data dir that a share keeps its utterances' lines of (the others, by speaker or read whole, stay).
_BY_UTTERANCE = ("utt2spk", "feats.scp", "utt2num_frames")

#: How long a rank waits in a collective: rank 0 alone fits the GMM baseline and writes the summary meanwhile.
TIMEOUT = timedelta(hours=24)


@dataclasses.dataclass(frozen=True)
class Team:
    r"""This process's place among ``world`` processes started by torchrun."""

    rank: int
    world: int


def join_team(device: str = "auto") -> Team | None:
    r"""The :class:`Team` of a process that torchrun started as one of several (``WORLD_SIZE`` > 1), its gloo
    process group initialised; else None. ``device`` (``score.device``) is checked first, by every process (more
    processes than GPUs on a machine: said by the others after rank 0 had scored its share of the first set)."""
    if torchrun.world_size() <= 1:
        return None
    import torch.distributed as dist

    from flowaccent.train.distributed import join_group

    join_group(device, "score", "gloo", timeout=TIMEOUT)  # its GPU made current, for what takes the current one
    return Team(dist.get_rank(), dist.get_world_size())


def share_of(data: DataDir, rank: int, world: int) -> DataDir:
    r"""Process ``rank``'s share of ``data``: a contiguous run of its utterances (in order), about ``1/world`` of its
    frames (by ``utt2num_frames``; without it, of its utterances): those whose middle frame falls in the ``rank``-th
    of ``world`` equal spans of the set's frames. May be empty (more processes than utterances)."""
    utts = data.utts
    frames = data.utt2num_frames() if data.has("utt2num_frames") else {}
    sizes = np.array([frames.get(u, 1) for u in utts] if frames else np.ones(len(utts)), np.float64)
    middles = np.cumsum(sizes) - sizes / 2
    spans = sizes.sum() * np.arange(1, world) / world
    edges = [0, *np.searchsorted(middles, spans, side="left").tolist(), len(utts)]
    mine = set(utts[edges[rank] : edges[rank + 1]])
    tables = {name: ({k: v for k, v in table.items() if k in mine} if name in _BY_UTTERANCE else table)
              for name, table in data.tables.items()}
    return DataDir(data.path, tables)


def share_folder(folder: Path, rank: int) -> Path:
    return folder / f".share.{rank}"


def share_config(config: ScoreConfig, rank: int) -> ScoreConfig:
    r"""``config`` with the latent sample of share ``rank`` seeded apart from the others'."""
    seed = int(np.random.SeedSequence([config.seed, rank]).generate_state(1, np.uint64)[0] >> np.uint64(1))
    return dataclasses.replace(config, seed=seed)


def _broadcast(job: Any) -> Any:
    import torch.distributed as dist

    carried = [job]
    dist.broadcast_object_list(carried, 0)
    return carried[0]


def _gathered(outcome: dict[str, Any], world: int) -> list[dict[str, Any]]:
    import torch.distributed as dist

    outcomes: list[Any] = [None] * world
    dist.all_gather_object(outcomes, outcome)
    return outcomes


def _score_share(model, data: DataDir, name: str, folder: Path, config: ScoreConfig, team: Team,
                 quiet: bool) -> dict[str, Any]:
    r"""Scores this process's share of ``data`` into its share folder; its outcome: the frames it scored, or the
    error that stopped it (a user's: said by rank 0)."""
    share = share_of(data, team.rank, team.world)
    if not share.utts:
        return {"frames": 0}
    try:
        # in the set's folder rank 0 made, not with it: where rank 0 had stopped and removed it (an --out it had
        # made, too), score_dir made them again, and they stayed, empty
        share_folder(folder, team.rank).mkdir(exist_ok=True)
        label = f"{name} (share {team.rank + 1}/{team.world})"  # its progress bar, its errors
        scores = score_dir(model, share, label, share_folder(folder, team.rank), share_config(config, team.rank), quiet)
    except FlowAccentError as error:
        return {"error": str(error)}
    except OSError as error:
        if not error.filename:
            raise
        return {"error": f"{error.filename}: {error.strerror}"}
    return {"frames": int(scores.num_frames.sum())}


def serve(team: Team, exp: Path, checkpoint: str | Path | None, config: ScoreConfig) -> None:
    r"""A rank but 0: scores its share of each set rank 0 sends, until it sends none. The model is loaded with the
    first set: an error every rank would hit there (no such checkpoint) is rank 0's to say, once (each rank said it,
    2 s late: rank 0 was waiting to release them)."""
    from flowaccent.train.checkpoint import load_experiment_model

    model = None
    while (job := _broadcast(None)) is not None:
        name, path, folder = job
        model = model or load_experiment_model(exp, checkpoint, "score")
        need = ("feats.scp",) + (("cmvn.scp",) if model.pipeline.config.cmvn == "spk" else ())
        try:
            data = load_data_dir(path, require=need, unused=UNUSED_BY_MODELS)
            _gathered(_score_share(model, data, name, Path(folder), config, team, True), team.world)
        except BaseException:  # stopped, or rank 0 gone (which removed the shares it saw, maybe before this one)
            _removed(share_folder(Path(folder), team.rank))
            raise


class Leader:
    r"""Rank 0's side: :meth:`score` has every rank score its share of a set; leaving the block releases them
    (where no set is in flight; otherwise they learn it from the broken connection)."""

    def __init__(self, team: Team):
        self.team, self.busy = team, False

    def __enter__(self) -> Leader:
        return self

    def __exit__(self, *exc) -> None:
        if not self.busy:
            try:
                _broadcast(None)
            except RuntimeError:  # a rank gone: nothing to release
                pass

    def score(self, model, data: DataDir, name: str, folder: Path, config: ScoreConfig, quiet: bool) -> None:
        r"""Scores set ``name`` (``data``) into ``folder`` with every rank: its files as :func:`score_dir` writes
        them (a stopped run's shares removed before: :func:`remove_shares`)."""
        folder.mkdir(parents=True, exist_ok=True)  # before the others make their shares in it
        try:
            self.busy = True  # till the outcomes are in: where rank 0 stops before, the others learn it from the
            _broadcast((name, str(data.path), str(folder.absolute())))  # connection
            outcomes = _gathered(_score_share(model, data, name, folder, config, self.team, quiet), self.team.world)
            self.busy = False
            for rank, outcome in enumerate(outcomes):
                if "error" in outcome:
                    where = f"rank {rank}/{self.team.world}: " if rank else ""
                    raise FlowAccentError(f"{where}{outcome['error']}")
            if join(folder, [o["frames"] for o in outcomes], config) != data.utts:  # each process read the dir itself
                raise ConfigError(f"score: set {name}: the processes' shares do not make up {data.path}'s "
                                  "utterances (did it change while they read it?)")
        finally:  # also where it stopped (a signal, a rank gone): they stayed in a set folder that was there before
            remove_shares(folder)


def remove_shares(folder: Path) -> None:
    r"""Removes the share folders in a set's ``folder`` (``.share.RANK``), a stopped run's among them."""
    _removed(*folder.glob(".share.*"))


def _removed(*folders: Path) -> None:
    r"""Removes ``folders`` whole, a stop signal that comes meanwhile held back till then (:class:`HeldSignals`; a
    second acts at once): torchrun's SIGTERM follows a process's end by milliseconds, as the others begin removing
    their shares, and could cut one short."""
    held = HeldSignals()
    with held, held.critical():
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def join(folder: Path, frames: list[int], config: ScoreConfig) -> list[str]:
    r"""Joins the shares in ``folder`` (``frames``: each rank's frames, 0 for none) into its ``utt_scores.tsv``,
    ``frame_scores.{ark,scp}``, ``utt_latent_means.npy``, ``latents.npy`` and ``latent_utts.txt``; returns the
    utterances joined, in order."""
    parts = [share_folder(folder, rank) for rank, count in enumerate(frames) if count]
    counts = [count for count in frames if count]
    for part in parts:
        if not (part / "utt_scores.tsv").is_file():
            raise FlowAccentError(f"{part}: a share scored by another process is not there: --out must be a folder "
                                  "every process sees (on several machines, a shared file system)")
    tables = [(part / "utt_scores.tsv").read_text(encoding="utf-8").split("\n", 1) for part in parts]
    atomic_write_text(folder / "utt_scores.tsv", tables[0][0] + "\n" + "".join(body for _, body in tables))
    _join_arks(folder, parts)
    save_npy(folder / "utt_latent_means.npy", np.concatenate([np.load(p / "utt_latent_means.npy") for p in parts]))
    latents, utts = _joined_sample(parts, counts, config)
    save_npy(folder / "latents.npy", latents)
    (folder / "latent_utts.txt").write_text("".join(f"{u}\n" for u in utts))
    return [line.split("\t", 1)[0] for _, body in tables for line in body.split("\n")[:-1]]


def _join_arks(folder: Path, parts: list[Path]) -> None:
    r"""``frame_scores.ark`` of the shares' arks one after the other, its scp their lines moved by their offsets."""
    ark = (folder / "frame_scores.ark").absolute()
    temporary, lines = temporary_name(ark), []
    try:
        with open(temporary, "wb") as out:
            for part in parts:
                base = out.tell()
                with open(part / "frame_scores.ark", "rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
                for line in (part / "frame_scores.scp").read_text(encoding="utf-8").split("\n")[:-1]:  # ids may hold
                    # U+2028 or U+0085, which str.splitlines cuts at
                    key, where = line.split(" ", 1)
                    lines.append(f"{key} {ark}:{int(where.rsplit(':', 1)[1]) + base}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, ark)
    finally:
        temporary.unlink(missing_ok=True)
    atomic_write_text(folder / "frame_scores.scp", "".join(lines))


def _joined_sample(parts: list[Path], frames: list[int], config: ScoreConfig) -> tuple[np.ndarray, list[str]]:
    r"""A uniform sample of at most ``max_latents`` of the shares' frames (``frames``: each share's) from their
    samples, each a uniform one of its share: how many come from each is drawn as a uniform sample of all frames
    would fall (multivariate hypergeometric: positions drawn among all frames, counted by share), then which,
    uniformly among the share's."""
    rng = np.random.default_rng(config.seed)
    # which of all frames a uniform sample takes, counted by share: numpy's multivariate_hypergeometric refuses a
    # total of 10**9 frames or more (its default method), and its other method takes memory in proportion to it
    picked = rng.choice(sum(frames), min(config.max_latents, sum(frames)), replace=False)
    take = np.bincount(np.searchsorted(np.cumsum(frames), picked, side="right"), minlength=len(frames))
    rows, utts = [], []
    for part, count in zip(parts, take):
        latents = np.load(part / "latents.npy")
        tags = (part / "latent_utts.txt").read_text().split("\n")[:-1]  # ids: any character but \n
        keep = np.sort(rng.choice(len(latents), int(count), replace=False))
        rows.append(latents[keep])
        utts += [tags[i] for i in keep]
    return np.concatenate(rows), utts
