"""What a run writes to its workdir, and when: one owner for every file.

    config.json            the resolved config (first, before any round)
    results.csv            one row per (strategy, seed, round); after every round
    processes/process_<i>/ multi-process runs: each process's own seeds' rows/pools
    checkpoints/           Orbax run state per round (:mod:`jaxal.checkpoint`) and
      finished/<i>.json    the rows and pools of each finished strategy
    labeled_indices.npz, learning_curve.{png,pdf,svg}, tensorboard/, DONE    at the end

Process 0 writes the run's files; every process writes its own part under
``processes/`` in a multi-process run. Result files are written atomically
(temporary name + rename).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from jaxal import report

DONE = "DONE"
CHECKPOINTS = "checkpoints"
FINISHED = "finished"


class WorkdirError(RuntimeError):
    """The workdir cannot be used (e.g. it already holds a finished run)."""


class DiskError(WorkdirError):
    """Writing to the workdir failed (e.g. a full disk); earlier checkpoints are intact."""


class Finished(NamedTuple):
    """A finished strategy: its rows and its acquisition order ``[S, budget]``."""

    rows: list[dict]
    order: np.ndarray


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


class RunWriter:
    """Owns the files of one run's workdir.

    Args:
      workdir: the folder (created on :meth:`start`).
      primary: this process writes the run's files (process 0).
      process_index: this process's index; ``own_seeds`` are the seeds it owns,
        or in a grid run the ``(seed, setting name)`` lanes it owns.
      multi_process: also write ``processes/process_<i>/``.
    """

    def __init__(
        self,
        workdir: str,
        *,
        primary: bool = True,
        process_index: int = 0,
        multi_process: bool = False,
        own_seeds: Sequence = (),
    ):
        self.workdir = workdir
        self.primary = primary
        self.own_lanes = {
            (int(s[0]), str(s[1])) if isinstance(s, tuple) else (int(s), "") for s in own_seeds
        }
        self.own_dir = None
        if multi_process:
            self.own_dir = os.path.join(workdir, "processes", f"process_{process_index}")

    def path(self, *parts: str) -> str:
        return os.path.join(self.workdir, *parts)

    @property
    def checkpoint_dir(self) -> str:
        return self.path(CHECKPOINTS)

    # --- before the run ------------------------------------------------------

    def check_not_finished(self, overwrite: bool) -> None:
        """Raises :class:`WorkdirError` if the workdir holds a finished run (or is a file)."""
        if os.path.exists(self.workdir) and not os.path.isdir(self.workdir):
            raise WorkdirError(f"--workdir {self.workdir!r} is a file, not a folder")
        if os.path.exists(self.path(DONE)) and not overwrite:
            raise WorkdirError(
                f"workdir {self.workdir!r} already holds a finished run (results.csv, {DONE}); "
                "choose another --workdir or pass --overwrite"
            )

    def saved_config(self) -> dict | None:
        """The ``config.json`` of an earlier run in this workdir, if any."""
        path = self.path("config.json")
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    def start(self, config_json: dict, overwrite: bool) -> None:
        """Create the workdir, drop what an earlier run left, write ``config.json``."""
        if overwrite and self.primary:  # nothing of the old run may mix with the new one
            for old in (self.checkpoint_dir, self.path("tensorboard")):
                if os.path.exists(old):
                    shutil.rmtree(old)
        os.makedirs(self.workdir, exist_ok=True)
        if self.own_dir is not None:
            os.makedirs(self.own_dir, exist_ok=True)
        if not self.primary:
            return
        for stale in (DONE, "labeled_indices.npz", "learning_curve.png"):
            if os.path.exists(self.path(stale)):
                os.remove(self.path(stale))
        _write_json(self.path("config.json"), config_json)

    def keep_live_log(self, labels: Sequence[str], strategy_index: int, next_round: int) -> None:
        """Cut ``metrics.jsonl`` (and, for a fresh start, TensorBoard) back to the
        rounds a resumed run keeps: the strategies before ``strategy_index`` and
        the rounds of that one before ``next_round`` (0, 0: nothing)."""
        if not self.primary:
            return
        if strategy_index == 0 and next_round == 0 and os.path.exists(self.path("tensorboard")):
            shutil.rmtree(self.path("tensorboard"))
        path = self.path("metrics.jsonl")
        if not os.path.exists(path):
            return
        keep = set(labels[:strategy_index])
        current = labels[strategy_index] if strategy_index < len(labels) else None
        lines = []
        with open(path) as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line torn by a kill
                if entry["strategy"] in keep or (
                    entry["strategy"] == current and entry["round"] < next_round
                ):
                    lines.append(line if line.endswith("\n") else line + "\n")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(lines)
        os.replace(tmp, path)

    # --- during the run -------------------------------------------------------

    def write_rows(self, all_rows: Sequence[dict]) -> None:
        """``results.csv`` (and this process's own part) after a round."""
        if self.primary:
            report.write_csv(self.path("results.csv"), all_rows)
        if self.own_dir is not None:
            report.write_csv(
                os.path.join(self.own_dir, "results.csv"),
                [r for r in all_rows if (r["seed"], r.get("setting", "")) in self.own_lanes],
            )

    def _finished_path(self, index: int) -> str:
        return os.path.join(self.checkpoint_dir, FINISHED, f"{index}.json")

    def save_finished(self, index: int, label: str, rows: list[dict], order: np.ndarray) -> None:
        """Record a finished strategy (its checkpoint steps may be pruned later)."""
        if not self.primary:
            return
        os.makedirs(os.path.dirname(self._finished_path(index)), exist_ok=True)
        payload = {"label": label, "rows": rows, "order": np.asarray(order).tolist()}
        _write_json(self._finished_path(index), payload)

    def load_finished(self, labels: Sequence[str], upto: int) -> dict[str, Finished]:
        """The finished strategies ``labels[:upto]``, as recorded.

        Raises:
          WorkdirError: one of them has no record (a damaged workdir).
        """
        out = {}
        for i, label in enumerate(labels[:upto]):
            path = self._finished_path(i)
            if not os.path.exists(path):
                raise WorkdirError(
                    f"workdir {self.workdir!r}: strategy {label!r} finished but its record "
                    f"{path} is missing; rerun with --overwrite"
                )
            with open(path) as f:
                got = json.load(f)
            out[label] = Finished(got["rows"], np.asarray(got["order"], np.int32))
        return out

    # --- after the run --------------------------------------------------------

    def finish(
        self,
        all_rows: list[dict],
        orders: dict[str, np.ndarray],
        rounds: dict[str, np.ndarray],
        seeds: np.ndarray,
        *,
        title: str,
        console=None,
        band: str = "std",
        settings: dict[str, str] | None = None,
    ) -> None:
        """The end-of-run files, then ``DONE``.

        ``orders``/``rounds`` hold ``[S, budget]`` per series (strategy, or
        ``strategy@setting`` in a grid run: ``settings`` maps it to its setting)."""
        if self.own_dir is not None:
            settings = settings or {}
            picks = {
                n: np.asarray([(int(sd), settings.get(n, "")) in self.own_lanes for sd in seeds])
                for n in orders
            }
            report.write_labeled_indices(
                os.path.join(self.own_dir, "labeled_indices.npz"),
                {n: o[picks[n]] for n, o in orders.items()},
                {n: r[picks[n]] for n, r in rounds.items()},
                seeds[np.any(list(picks.values()), axis=0)] if picks else seeds[:0],
            )
        if not self.primary:
            return
        report.write_labeled_indices(self.path("labeled_indices.npz"), orders, rounds, seeds)
        report.write_csv(self.path("results.csv"), all_rows)
        report.plot_learning_curves(
            self.path("learning_curve.png"), all_rows, title=title, band=band
        )
        if console is not None:
            console.print(report.summary_table(all_rows, width=console.width))
            console.print(f"results in {os.path.abspath(self.workdir)}")
        with open(self.path(DONE), "w") as f:
            f.write("finished\n")
