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


@pytest.mark.parametrize(
    "mode,style,seeds,devices",
    # devices per process; with 1 seed on 2 one-device processes the seed's
    # row of the mesh spans both processes (each runs it; process 0 owns it).
    [("vmap", "flags", 4, 2), ("loop", "env", 4, 2), ("loop", "slurm", 1, 1)],
)
def test_two_processes_match_one_process(tmp_path, mode, style, seeds, devices):
    one, two = tmp_path / "one", tmp_path / "two"
    args = [*ARGS, f"--config.seed_execution={mode}", f"--config.num_seeds={seeds}"]
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
        env = _env(devices)
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
    assert f"{seeds} seeds" in outs[0][0]  # process 0 reports
    assert _rows(two) == _rows(one)
    a, b = np.load(one / "labeled_indices.npz"), np.load(two / "labeled_indices.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])
    # Each process also wrote the rows and pools of its own seeds (those of
    # its seed groups: 2 of 4 with 2 devices each), together the run's.
    mine = [list(range(seeds))[i * seeds // 2 : (i + 1) * seeds // 2] for i in range(2)]
    if seeds == 1:
        mine = [[0], []]
    own = [_rows(two, f"processes/process_{i}/results.csv") for i in range(2)]
    assert [sorted({int(r["seed"]) for r in rows}) for rows in own] == mine
    key = lambda r: (r["strategy"], int(r["seed"]), int(r["round"]))  # noqa: E731
    assert sorted(own[0] + own[1], key=key) == sorted(_rows(one), key=key)
    for i in range(2):
        part = np.load(two / "processes" / f"process_{i}" / "labeled_indices.npz")
        np.testing.assert_array_equal(part["seeds"], mine[i])
        np.testing.assert_array_equal(part["margin/order"], a["margin/order"][mine[i]])
    # Orbax wrote one shard set per process.
    step = sorted(d for d in os.listdir(two / "checkpoints") if d.isdigit())[-1]
    names = " ".join(os.listdir(two / "checkpoints" / step / "state"))
    assert "process_0" in names and "process_1" in names, names
