"""Checkpoints inside a round (checkpoint.every_epochs / every_minutes): a run
stopped mid-round resumes from the saved epoch, to the rows and pools of the
run never interrupted -- on both step loops and both seed executions."""

import os
import signal

import numpy as np
import pytest
from conftest import assert_same_run, result_rows, tiny_config

from jaxal import in_round, interrupt
from jaxal.config import ConfigError, validate
from jaxal.experiment import run_experiment

EPOCHS = 6


def _cfg(**kw):
    base = dict(strategy="entropy", num_seeds=2, budget=20)
    base.update({"train.epochs": EPOCHS, **kw})
    return tiny_config(**base)


def _stop_in_round_one(monkeypatch, tmp_path, **kw):
    """Run with SIGTERM during the second piece (epochs 2-3) of round 1 (3
    pieces a round: the 5th stop check); returns the stopped workdir."""
    calls = {"n": 0}
    real = interrupt.requested

    def signal_in_round_one():
        calls["n"] += 1
        if calls["n"] == 5:
            interrupt.request(signal.SIGTERM)
        return real()

    monkeypatch.setattr(interrupt, "requested", signal_in_round_one)
    w = str(tmp_path / "w")
    with pytest.raises(interrupt.Interrupted):
        run_experiment(_cfg(**kw), w, progress=False)
    interrupt._requested.clear()
    monkeypatch.setattr(interrupt, "requested", real)
    return w


def _spy_restores(monkeypatch):
    """Records (round, whether a saved carry was found) of every round start."""
    seen = []
    real = in_round.InRoundCheckpoints.for_strategy

    def for_strategy(self, index):
        hooks = real(self, index)

        def restore(r, template):
            carry = hooks.restore(r, template)
            seen.append((r, None if carry is None else int(np.max(np.asarray(carry.epoch)))))
            return carry

        return hooks._replace(restore=restore)

    monkeypatch.setattr(in_round.InRoundCheckpoints, "for_strategy", for_strategy)
    return seen


@pytest.mark.parametrize(
    "execution,step_loop", [("loop", "device"), ("vmap", "host"), ("vmap", "device")]
)
def test_stopped_mid_round_resumes_from_the_saved_epoch_bit_for_bit(
    execution, step_loop, tmp_path, monkeypatch
):
    kw = {
        "seed_execution": execution,
        "train.step_loop": step_loop,
        "checkpoint.every_epochs": 2,
    }
    ref = str(tmp_path / "ref")
    run_experiment(_cfg(**kw), ref, progress=False)

    w = _stop_in_round_one(monkeypatch, tmp_path, **kw)
    assert not os.path.exists(os.path.join(w, "DONE"))
    assert len(result_rows(w)) == 2  # round 0 of both seeds; round 1 was stopped at epoch 4

    seen = _spy_restores(monkeypatch)
    run_experiment(_cfg(**kw), w, progress=False)
    assert seen[0] == (1, 4)  # round 1 restarted from its carry after 4 epochs
    assert all(epoch is None for _, epoch in seen[1:])
    assert_same_run(w, ref)


def test_pieces_compute_what_the_whole_round_computes(tmp_path):
    # The host step loop runs the same jitted steps however a round is cut;
    # the device step loop runs the epoch body of the same program.
    for step_loop in ("host", "device"):
        kw = {"seed_execution": "loop", "train.step_loop": step_loop}
        whole, cut = str(tmp_path / f"whole-{step_loop}"), str(tmp_path / f"cut-{step_loop}")
        run_experiment(_cfg(**kw), whole, progress=False)
        run_experiment(_cfg(**kw, **{"checkpoint.every_epochs": 1}), cut, progress=False)
        assert_same_run(cut, whole)


def test_a_changed_budget_does_not_reuse_another_plans_carry(tmp_path, monkeypatch):
    kw = {"checkpoint.every_epochs": 2}
    w = _stop_in_round_one(monkeypatch, tmp_path, **kw)
    seen = _spy_restores(monkeypatch)
    run_experiment(_cfg(**kw, budget=25), w, progress=False)
    assert seen and all(epoch is None for _, epoch in seen)
    ref = str(tmp_path / "ref")
    run_experiment(_cfg(**kw, budget=25), ref, progress=False)
    assert_same_run(w, ref)


class _Carry:
    def __init__(self, epoch):
        self.epoch = np.asarray([epoch, epoch])


def test_minutes_period_saves_when_due_and_always_on_a_stop(tmp_path):
    now = {"t": 0.0}
    saved = []
    ckpts = in_round.InRoundCheckpoints(
        str(tmp_path),
        every_epochs=0,
        every_minutes=2.0,
        round_step=lambda si, r: si * 1000 + r,
        budget=10,
        async_save=False,
        clock=lambda: now["t"],
    )
    ckpts._ckpt.save = lambda step, tree, meta: saved.append((step, meta["epoch"]))
    assert ckpts.chunk == 1  # the time is checked after every epoch
    hooks = ckpts.for_strategy(0)
    hooks.restore(3, None)  # the round starts at t = 0
    for epoch, t in [(1, 50.0), (2, 119.0), (3, 121.0), (4, 200.0), (5, 250.0)]:
        now["t"] = t
        hooks.after(3, _Carry(epoch), False)
    now["t"] = 260.0
    hooks.after(3, _Carry(6), True)  # a stop request saves at once
    assert saved == [(3 * 100_000 + e, e) for e in (3, 5, 6)]  # 121 s, 129 s later, stop
    ckpts.close()


@pytest.mark.parametrize(
    "overrides,match",
    [
        ({"checkpoint.every_epochs": -1}, "checkpoint.every_epochs"),
        ({"checkpoint.every_minutes": -0.5}, "checkpoint.every_minutes"),
        ({"checkpoint.every_epochs": 2, "checkpoint.enabled": False}, "checkpoint.enabled=True"),
        ({"checkpoint.every_minutes": 5.0, "train.retrains": 2}, "train.retrains"),
    ],
)
def test_bad_in_round_settings_are_one_line(overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(_cfg(**overrides))
