"""A changed budget on resume brings every strategy to it: the rows and pools of
a run started with that budget, with nothing duplicated (grow and shrink,
after the run finished and mid-strategy)."""

import os
import signal

import pytest
from conftest import assert_same_run, tiny_config

from jaxal import interrupt
from jaxal.experiment import run_experiment

CFG = dict(strategy="random,entropy", num_seeds=2)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Runs started with each budget (the references)."""
    out = {}
    for budget in (22, 25, 35):
        w = str(tmp_path_factory.mktemp(f"fresh{budget}"))
        run_experiment(tiny_config(**CFG, budget=budget), w, progress=False)
        out[budget] = w
    return out


@pytest.mark.parametrize("old,new", [(25, 35), (35, 25), (25, 22)])
def test_finished_run_rerun_with_another_budget(old, new, fresh, tmp_path):
    # grow; shrink to a round boundary; shrink into the last acquisition (recomputed)
    w = str(tmp_path / "w")
    run_experiment(tiny_config(**CFG, budget=old), w, progress=False)
    run_experiment(tiny_config(**CFG, budget=new), w, progress=False)  # no overwrite needed
    assert_same_run(w, fresh[new])


def test_interrupted_mid_strategy_then_resumed_with_a_larger_budget(fresh, tmp_path, monkeypatch):
    w = str(tmp_path / "w")
    calls = {"n": 0}
    real = interrupt.check

    def stop_in_entropy():  # random has 4 rounds; the 6th check is entropy's round 1
        calls["n"] += 1
        if calls["n"] == 6:
            interrupt.request(signal.SIGTERM)
        real()

    monkeypatch.setattr(interrupt, "check", stop_in_entropy)
    with pytest.raises(interrupt.Interrupted):
        run_experiment(tiny_config(**CFG, budget=25), w, progress=False)
    interrupt._requested.clear()
    monkeypatch.setattr(interrupt, "check", real)
    assert not os.path.exists(os.path.join(w, "DONE"))
    run_experiment(tiny_config(**CFG, budget=35), w, progress=False)
    assert_same_run(w, fresh[35])


def test_unchanged_finished_run_is_still_refused(fresh):
    from jaxal.workdir import WorkdirError

    with pytest.raises(WorkdirError, match="already holds a finished run"):
        run_experiment(tiny_config(**CFG, budget=25), fresh[25], progress=False)
