"""``jaxal sweep``: get_hyper expansion, the local launcher (real units, skip on
re-run, refusal of a different finished config), the slurm job array (fake sbatch)
and --dry_run."""

import csv
import json
import os
import subprocess
import sys
import time

import pytest

from jaxal import sweep

CONFIG = """
from jaxal.config import base_config


def get_config(arg=None):
    c = base_config()
    c.dataset.name = "digits"
    c.model.name = "mlp"
    c.model.hidden = (16,)
    c.model.dropout = 0.0
    c.strategy = "entropy"
    c.num_seeds = 1
    c.num_devices = 1
    c.initial.strategy = "random"
    c.initial.size = 10
    c.query_size = 5
    c.budget = 15
    c.train.epochs = 1
    c.train.batch_size = 8
    c.score_batch_size = 256
    c.train.eval_batch_size = 256
    c.checkpoint.enabled = False
    return c


def get_hyper(h):
    return h.product([h.sweep("config.strategy", ["random", "margin"])])
"""


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(CONFIG)
    return str(path)


def _sweep_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "jaxal", "sweep", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def test_expansion_product_zip_and_names():
    h = sweep.Hyper()
    points = h.product(
        [
            h.sweep("config.strategy", ["margin", "entropy"]),
            h.sweep("config.train.learning_rate", [0.01, 0.1]),
        ]
    )
    assert points == [
        {"config.strategy": "margin", "config.train.learning_rate": 0.01},
        {"config.strategy": "margin", "config.train.learning_rate": 0.1},
        {"config.strategy": "entropy", "config.train.learning_rate": 0.01},
        {"config.strategy": "entropy", "config.train.learning_rate": 0.1},
    ]
    assert sweep.unit_name(points[0]) == "strategy=margin,train.learning_rate=0.01"
    zipped = h.zip(
        [h.sweep("config.strategy", ["a", "b"]), h.sweep("config.model.hidden", [(8,), (16, 4)])]
    )
    assert zipped == [
        {"config.strategy": "a", "config.model.hidden": (8,)},
        {"config.strategy": "b", "config.model.hidden": (16, 4)},
    ]
    names = [u["name"] for u in sweep.units_of(zipped)]
    assert names == ["strategy=a,model.hidden=8", "strategy=b,model.hidden=16-4"]
    assert all("/" not in n and " " not in n for n in names)
    odd = sweep.unit_name({"config.strategy": "subsample(base=entropy,m=5)/x y"})
    assert odd == "strategy=subsample_base=entropy,m=5_x_y"
    assert len(sweep.unit_name({"config.strategy": "x" * 500})) <= 120
    dup = sweep.units_of([{"config.seed": 1}, {"config.seed": 1}])
    assert [u["name"] for u in dup] == ["seed=1", "seed=1-2"]
    with pytest.raises(sweep.SweepError, match="config."):
        h.sweep("strategy", ["a"])
    with pytest.raises(sweep.SweepError, match="equal length"):
        h.zip([h.sweep("config.a", [1, 2]), h.sweep("config.b", [1])])
    with pytest.raises(sweep.SweepError, match="twice"):
        h.product([h.sweep("config.a", [1]), h.sweep("config.a", [2])])


def test_dry_run_lists_units_and_runs_nothing(config_file, tmp_path, capsys):
    root = tmp_path / "root"
    assert sweep.main([f"--config={config_file}", f"--workdir={root}", "--dry_run"]) == 0
    out = capsys.readouterr().out
    assert "2 units" in out and "strategy=random" in out and "strategy=margin" in out
    assert "--config.strategy=margin" in out
    assert not root.exists()


def test_bad_sweep_is_one_line_exit_2(config_file, tmp_path, capsys):
    root = tmp_path / "root"
    argv = [f"--config={config_file}", f"--workdir={root}", "--dry_run"]
    assert sweep.main([*argv, "--config.train.epoch=2"]) == 2
    assert sweep.main([*argv, "--config.strategy=entropy"]) == 2  # swept already
    assert sweep.main([f"--config={tmp_path}/none.py", f"--workdir={root}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "config.train.epoch" in err[0] and "swept" in err[1]


def _rows(workdir):
    with open(os.path.join(workdir, "results.csv")) as f:
        return list(csv.DictReader(f))


def test_local_runs_units_then_skips_then_refuses_other_config(config_file, tmp_path):
    root = tmp_path / "root"
    done = _sweep_cli(f"--config={config_file}", f"--workdir={root}", "--parallel=2")
    assert done.returncode == 0, done.stdout + done.stderr
    listed = json.loads((root / "sweep.json").read_text())
    names = [u["name"] for u in listed["units"]]
    assert names == ["strategy=random", "strategy=margin"]
    assert listed["units"][1]["overrides"] == {"config.strategy": "margin"}
    for name, strategy in zip(names, ["random", "margin"], strict=True):
        rows = _rows(root / name)
        assert rows and {r["strategy"] for r in rows} == {strategy}
        assert (root / name / "DONE").exists()
    assert any((root / ".jax_cache").iterdir())  # the shared compilation cache was filled

    # the same sweep again: every unit is already finished -> skipped, exit 0
    start = time.monotonic()
    again = _sweep_cli(f"--config={config_file}", f"--workdir={root}")
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already holds this finished run; skipped") == 2
    assert "2 finished earlier" in again.stdout
    assert time.monotonic() - start < 40

    # a finished unit of another config is refused: exit 2, one line naming the key
    other = _sweep_cli(f"--config={config_file}", f"--workdir={root}", "--config.train.epochs=2")
    assert other.returncode == 2
    errors = [ln for ln in other.stderr.splitlines() if ln.startswith("jaxal: error")]
    assert len(errors) == 2 and all("config.train.epochs: 1 -> 2" in e for e in errors)
    assert {r["strategy"] for r in _rows(root / "strategy=margin")} == {"margin"}


def test_skip_finished_in_the_ordinary_cli(config_file, tmp_path):
    """``jaxal --skip_finished`` alone: a finished other config is one line, exit 2."""
    unit = tmp_path / "unit"
    unit.mkdir()
    (unit / "DONE").write_text("")
    (unit / "config.json").write_text(json.dumps({"strategy": "random"}))
    cmd = [sys.executable, "-m", "jaxal", f"--config={config_file}", f"--workdir={unit}"]
    refused = subprocess.run([*cmd, "--skip_finished"], capture_output=True, text=True)
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and "config.budget" in refused.stderr


FAKE_SBATCH = """#!/bin/sh
echo "$@" > "{log}/argv"
cat "$1" > "{log}/script"
echo "Submitted batch job 12345"
"""


def test_slurm_writes_job_array_and_submits(config_file, tmp_path):
    bin_dir, root = tmp_path / "bin", tmp_path / "root"
    bin_dir.mkdir()
    fake = bin_dir / "sbatch"
    fake.write_text(FAKE_SBATCH.format(log=tmp_path))
    fake.chmod(0o755)
    done = _sweep_cli(
        f"--config={config_file}",
        f"--workdir={root}",
        "--launcher=slurm",
        "--slurm_partition=gpu",
        "--slurm_time=01:00:00",
        "--slurm_gpus=1",
        "--slurm_cpus=8",
        "--slurm_mem=32G",
        "--slurm_extra=--account=proj",
        "--config.train.epochs=2",
        env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12345" in done.stdout
    assert (tmp_path / "argv").read_text().strip() == str(root / "sweep.sbatch")
    script = (tmp_path / "script").read_text()
    assert script == (root / "sweep.sbatch").read_text()
    for line in (
        "#SBATCH --array=0-1",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=01:00:00",
        "#SBATCH --gpus=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=32G",
        "#SBATCH --account=proj",
        f"export JAX_COMPILATION_CACHE_DIR={root / '.jax_cache'}",
    ):
        assert line in script.splitlines(), line
    assert "SLURM_ARRAY_TASK_ID" in script and "--skip_finished" in script
    assert str(root / "sweep.json") in script
    units = json.loads((root / "sweep.json").read_text())["units"]
    assert [u["name"] for u in units] == ["strategy=random", "strategy=margin"]
    for u in units:
        assert "--config.train.epochs=2" in u["args"]
        assert f"--workdir={root / u['name']}" in u["args"]
    assert not (root / "strategy=random").exists()  # nothing ran here
