"""Two real processes on localhost (CPU collectives) give a one-process run's results."""

import csv
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = [
    "--config=configs/digits.py:smoke",
    "--config.num_seeds=4",
    "--config.train.epochs=3",
    "--config.strategy=margin",
    "--no_progress",
]
TIMING = ("train_seconds", "eval_seconds", "score_seconds", "select_seconds")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rows(workdir, name="results.csv"):
    with open(os.path.join(workdir, name)) as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def _env(devices: int):
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


@pytest.mark.parametrize("mode,style", [("vmap", "flags"), ("loop", "env"), ("loop", "slurm")])
def test_two_processes_match_one_process(tmp_path, mode, style):
    one, two = tmp_path / "one", tmp_path / "two"
    args = [*ARGS, f"--config.seed_execution={mode}"]
    r = subprocess.run(
        [sys.executable, "-m", "jaxal", *args, f"--workdir={one}", "--config.num_devices=1"],
        cwd=REPO,
        env=_env(1),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    port = _free_port()
    # The multi-process settings as flags, as JAX_* variables, or detected by
    # JAX from a (simulated) SLURM job step with --distributed.

    def launch(i):
        cmd = [sys.executable, "-m", "jaxal", *args, f"--workdir={two}"]
        env = _env(2)
        if style == "flags":
            cmd += [f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2"]
            cmd += [f"--process_id={i}"]
        elif style == "env":
            env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2")
            env["JAX_PROCESS_ID"] = str(i)
        else:
            cmd.append("--distributed")
            env.update(SLURM_JOB_ID="1", SLURM_STEP_NODELIST="127.0.0.1", SLURM_NTASKS="2")
            env.update(SLURM_PROCID=str(i), SLURM_LOCALID=str(i), JAX_COORDINATOR_PORT=str(port))
        return cmd, env

    procs = []
    for i in range(2):
        cmd, env = launch(i)
        procs.append(
            subprocess.Popen(
                cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        )
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
    assert "4 seeds" in outs[0][0]  # process 0 reports; the seeds live on 4 devices, 2 hosts
    assert _rows(two) == _rows(one)
    a, b = np.load(one / "labeled_indices.npz"), np.load(two / "labeled_indices.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    # Each process also wrote the rows and pools of its own seeds (2 of 4 each:
    # one seed group per device, 2 devices per process), together the run's.
    own = [_rows(two, f"processes/process_{i}/results.csv") for i in range(2)]
    assert [sorted({r["seed"] for r in rows}) for rows in own] == [["0", "1"], ["2", "3"]]
    key = lambda r: (r["strategy"], int(r["seed"]), int(r["round"]))  # noqa: E731
    assert sorted(own[0] + own[1], key=key) == sorted(_rows(one), key=key)
    for i in range(2):
        part = np.load(two / "processes" / f"process_{i}" / "labeled_indices.npz")
        np.testing.assert_array_equal(part["seeds"], [2 * i, 2 * i + 1])
        np.testing.assert_array_equal(part["margin/order"], a["margin/order"][2 * i : 2 * i + 2])
    # Orbax wrote one shard set per process.
    step = sorted(d for d in os.listdir(two / "checkpoints") if d.isdigit())[-1]
    names = " ".join(os.listdir(two / "checkpoints" / step / "state"))
    assert "process_0" in names and "process_1" in names, names
