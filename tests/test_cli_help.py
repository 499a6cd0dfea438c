"""The command line as a new user meets it: --help, --print_config, readable
errors for near-miss keys and bad parameter values, tables and figures that
stay readable, --overwrite leaving nothing stale."""

import io
import os
import subprocess
import sys

import pytest
from conftest import tiny_config

from jaxal import report
from jaxal.experiment import run_experiment

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _jaxal(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "jaxal", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_lists_keys_defaults_comments_registries_and_variants():
    r = _jaxal("--config=configs/digits.py", "--help")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "usage: jaxal --config=FILE[:variant] --workdir=DIR" in out
    assert "query_size = 10    # k, points labeled per round" in out  # key, default, comment
    assert "train.learning_rate = 0.001" in out
    assert "history_subsample(base='entropy', m=10000" in out  # strategies with parameters
    assert "resnet18(" in out and "'module:factory'" in out  # models
    assert "class_balanced" in out and "npz:PATH" in out  # initial pools, datasets
    assert "configs/digits.py:smoke" in out  # the config file's variants (its docstring)
    assert _jaxal("-h").returncode == 0


def test_print_config_shows_the_resolved_config_and_exits_0():
    r = _jaxal(
        "--config=configs/digits.py:smoke",
        "--config.query_size=7",
        "--config.num_rounds=2",
        "--print_config",
    )
    assert r.returncode == 0, r.stderr
    assert "query_size: 7" in r.stdout and "num_rounds: 2" in r.stdout
    assert "budget: null" in r.stdout  # the last of budget / num_rounds wins


@pytest.mark.parametrize(
    "flag,words",
    [
        (
            "--config.query_sise=10",
            ["unknown config key config.query_sise", "did you mean config.query_size?"],
        ),
        ("--config.train.learnin_rate=0.1", ["did you mean config.train.learning_rate?"]),
        (
            "--config.strategy_params.power.beta=2",
            ["config.strategy_params has no field 'power'", "--config.strategy='power(beta=...)'"],
        ),
        ("--config.strategy_params.m=abc", ["config.strategy_params.m='abc'", "expects a number"]),
    ],
)
def test_bad_flags_are_one_readable_line(flag, words, tmp_path):
    extra = ["--config.strategy=subsample"] if "params.m" in flag else []
    r = _jaxal("--config=configs/digits.py:smoke", f"--workdir={tmp_path / 'w'}", flag, *extra)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "\\n" not in lines[0] and "\\'" not in lines[0], r.stderr
    assert all(w in lines[0] for w in words), lines[0]


def _rows(strategies, labels=(20, 40, 60, 80, 100, 120)):
    return [
        {
            "strategy": s,
            "seed": seed,
            "num_labeled": n,
            "test_accuracy": 0.5 + 0.001 * i + n / 1e3,
            "test_nll": 1.0,
        }
        for i, s in enumerate(strategies)
        for seed in (0, 1)
        for n in labels
    ]


@pytest.mark.parametrize("count", [2, 6, 19])
def test_summary_table_fits_an_80_column_log_at_any_number_of_strategies(count):
    from rich.console import Console

    names = [f"strategy_{i:02d}" for i in range(count)]
    buf = io.StringIO()
    Console(file=buf, width=80, force_terminal=False).print(report.summary_table(_rows(names)))
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for i, name in enumerate(names):  # every strategy's final accuracy is shown
        assert name in text and f"{100 * (0.5 + 0.001 * i + 0.12):.2f} ± 0.00" in text


def test_learning_curve_figures_and_band_choice(tmp_path):
    rows = _rows([f"s{i}" for i in range(12)])
    for band in ("std", "sem", "ci95"):
        report.plot_learning_curves(str(tmp_path / f"{band}.png"), rows, band=band)
        for ext in (".png", ".pdf", ".svg"):
            assert (tmp_path / f"{band}{ext}").stat().st_size > 1000
    with pytest.raises(ValueError, match="allowed: std, sem, ci95"):
        report.plot_learning_curves(str(tmp_path / "x.png"), rows, band="iqr")
    colours = report.strategy_colours(30)
    assert len({tuple(c) for c in colours}) == 30


def test_overwrite_removes_the_old_tensorboard_curves(tmp_path):
    work = tmp_path / "w"
    config = tiny_config(
        strategy="random,entropy",
        num_seeds=1,
        budget=15,
        **{"train.epochs": 1, "checkpoint.enabled": False},
    )
    run_experiment(config, str(work), progress=False)
    assert (work / "tensorboard" / "entropy").is_dir()
    config = tiny_config(
        strategy="margin",
        num_seeds=1,
        budget=15,
        **{"train.epochs": 1, "checkpoint.enabled": False},
    )
    run_experiment(config, str(work), progress=False, overwrite=True)
    assert sorted(os.listdir(work / "tensorboard")) == ["margin"]
    assert (work / "learning_curve.pdf").exists() and (work / "learning_curve.svg").exists()
