"""Checkpoints inside a round: the training carry every N epochs or M minutes.

A round of a big model (ResNet-18, 200 epochs) can take hours; a preempted
round would restart from epoch 0. With ``checkpoint.every_epochs = N`` and/or
``checkpoint.every_minutes = M`` the round trains in pieces
(:func:`jaxal.loop.rounds` with an :class:`~jaxal.loop.InRound`): ``N`` epochs
at a time (1 when only ``M`` is set), and after a piece the lanes' training
carry (:class:`jaxal.train.FitCarry`: weights, optimizer state, epoch, early
stopping) is saved to ``<workdir>/checkpoints/in_round`` when ``N`` is set and
no ``M``, when ``M`` minutes passed since the round started or the last save,
or when a stop (SIGTERM / Ctrl-C) was requested during the piece. Only the
newest is kept.

A resumed run restarts the round in flight from its saved carry when that
carry belongs to the same strategy, round and plan (the checkpoint step
encodes strategy and round, the layout check the buffer sizes); otherwise the
round starts from epoch 0. A round cut into pieces computes what it computes
uninterrupted: the pieces run in the same order with the same programs (the
epoch bound is traced data), so resumed equals uninterrupted bit for bit.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable

import numpy as np

from jaxal import checkpoint as checkpoint_lib
from jaxal.loop import InRound
from jaxal.parallel import to_host

_EPOCHS = 100_000  # checkpoint step = round step x _EPOCHS + epochs done


class InRoundCheckpoints:
    """The in-round checkpoints of one run (call every method on every process).

    Args:
      checkpoint_dir: the run's checkpoint folder (``checkpoints/in_round`` is used).
      every_epochs: ``checkpoint.every_epochs`` (0: no epoch period).
      every_minutes: ``checkpoint.every_minutes`` (0: no time period).
      round_step: ``(strategy index, round) -> int``, the run's round step number.
      budget: the plan's budget (kept in the metadata).
      async_save: write in the background.
      clock: seconds (tests pass a fake one).
      guard: a context manager factory around each save (the runner's
        one-line report of disk trouble).
    """

    def __init__(
        self,
        checkpoint_dir: str,
        *,
        every_epochs: int,
        every_minutes: float,
        round_step: Callable[[int, int], int],
        budget: int,
        async_save: bool = True,
        clock: Callable[[], float] = time.monotonic,
        guard: Callable = contextlib.nullcontext,
    ):
        self.chunk = int(every_epochs) or 1
        self.every_epochs, self.every_seconds = int(every_epochs), 60.0 * float(every_minutes)
        self.round_step, self.budget, self.clock = round_step, int(budget), clock
        self.guard = guard
        self._ckpt = checkpoint_lib.RunCheckpointer(
            os.path.join(checkpoint_dir, "in_round"),
            max_to_keep=1,
            async_save=async_save,
            name="in_round",
        )
        self._last = clock()

    def for_strategy(self, index: int) -> InRound:
        """The :class:`~jaxal.loop.InRound` hooks for strategy ``index`` of the run."""

        def restore(round_: int, template):
            self._last = self.clock()  # the time period counts from the round's start
            step = self._ckpt.latest_step()
            if step is None or step // _EPOCHS != self.round_step(index, round_):
                return None
            try:
                carry, meta = self._ckpt.restore(step, template)
            except checkpoint_lib.LayoutMismatchError:
                return None  # another plan's buffers (a changed budget): start the round anew
            except Exception as e:  # noqa: BLE001 - an unreadable save: start the round anew
                warnings.warn(
                    f"in-round checkpoint {step} is unreadable ({type(e).__name__}: "
                    f"{str(e)[:200]}); round {round_} restarts from epoch 0",
                    checkpoint_lib.CheckpointWarning,
                    stacklevel=2,
                )
                return None
            if meta.get("budget") != self.budget:
                return None
            return carry

        def after(round_: int, carry, stopping: bool) -> None:
            now = self.clock()
            due = stopping or (
                now - self._last >= self.every_seconds
                if self.every_seconds > 0
                else self.every_epochs > 0
            )
            if not due:
                return
            epoch = int(np.max(to_host(carry.epoch)))
            step = self.round_step(index, round_) * _EPOCHS + epoch
            meta = {"strategy_index": index, "round": round_, "epoch": epoch, "budget": self.budget}
            with self.guard():
                self._ckpt.save(step, carry, meta)
            self._last = now

        return InRound(self.chunk, restore, after)

    def close(self) -> None:
        self._ckpt.close()
