"""A killed run resumes from its last checkpoint to the identical result."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import result_rows, smoke_cmd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_cmd, _rows = smoke_cmd, result_rows


def _kill_after(workdir, marker: str):
    """Start a run and SIGKILL it once ``marker`` has been printed (mid-run)."""
    p = subprocess.Popen(
        _cmd(workdir), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    deadline = time.time() + 120
    for line in p.stdout:
        if marker in line:
            time.sleep(0.3)  # into the next round's work
            os.kill(p.pid, signal.SIGKILL)
            break
        assert time.time() < deadline, "run did not reach the marker"
    p.wait()
    assert p.returncode == -signal.SIGKILL
    assert not os.path.exists(os.path.join(workdir, "DONE"))


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """The uninterrupted reference run."""
    full = tmp_path_factory.mktemp("full") / "run"
    r = subprocess.run(_cmd(full), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return full


def test_sigkill_mid_run_then_resume_is_bit_identical(tmp_path, full):
    killed = tmp_path / "killed"

    _kill_after(killed, "margin r1 ")
    before = _rows(killed)
    assert any(r["strategy"] == "margin" for r in before)
    r = subprocess.run(_cmd(killed), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "resuming from checkpoint" in r.stdout

    assert _rows(killed) == _rows(full)  # metrics bit-identical, nothing lost or duplicated
    a, b = np.load(full / "labeled_indices.npz"), np.load(killed / "labeled_indices.npz")
    assert sorted(a.files) == sorted(b.files)
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])


def test_corrupt_latest_checkpoint_falls_back_to_previous(tmp_path, full):
    work = tmp_path / "w"
    _kill_after(work, "random r2 ")
    ckpts = sorted(int(d) for d in os.listdir(work / "checkpoints") if d.isdigit())
    assert len(ckpts) >= 2
    latest = work / "checkpoints" / str(ckpts[-1])
    for root, _, files in os.walk(latest):  # truncate every file of the latest step
        for name in files:
            open(os.path.join(root, name), "w").close()
    r = subprocess.run(_cmd(work), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resuming from checkpoint {ckpts[-2]}" in r.stdout
    assert _rows(work) == _rows(full)


def test_resume_refuses_a_different_config(tmp_path):
    work = tmp_path / "w"
    _kill_after(work, "random r1 ")
    r = subprocess.run(
        _cmd(work, "--config.train.learning_rate=0.5"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "different config" in r.stderr and "config.train.learning_rate" in r.stderr
