"""Reading workdirs: runs, their rows, configs and the settings that differ."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from jaxal import grid as grid_lib
from jaxal.grid import series_name

USAGE_EXIT = 2
PHASES = ("train_seconds", "eval_seconds", "score_seconds", "select_seconds")
_INT_COLUMNS = ("seed", "round", "num_labeled", "train_epochs", "diverged", "queried", "stopped")
# Config keys that do not change what a run computes (or are compared by other
# means: seeds by value, strategies by label, budgets on the labels axis). They
# do not split the learning curves into facets, nor stop a run's `random` from
# serving as another run's reference.
_NOT_SETTINGS = (
    "strategy",
    "seed",
    "num_seeds",
    "seed_execution",
    "seed_threads",
    "num_devices",
    "score_batch_size",
    "train.eval_batch_size",
    "budget",
    "num_rounds",
    "dataset.data_dir",
    "dataset.download",
    "checkpoint.",
)


_FIGURES = ("learning_curves", "time_split", "class_distribution", "overlap")
_TABLES = ("status", "summary", "time_split", "class_distribution", "overlap", "config_diff")
_OUTPUTS = (
    ("index.html", "report.md")
    + tuple(f"{f}.png" for f in _FIGURES)
    + tuple(f"{t}.{ext}" for t in _TABLES for ext in ("md", "csv"))
)


class ReportError(ValueError):
    """The input cannot be reported on (one line, exit status 2)."""


# --- reading workdirs ---------------------------------------------------------


@dataclass
class Run:
    """One workdir as read from disk."""

    path: str
    name: str
    config: dict
    rows: list[dict]
    done: bool
    indices: dict | None  # "seeds" and per strategy "<label>/order", "<label>/round"
    strategies: list[str]  # labels: the config's in run order, then any others in rows

    @property
    def dataset_name(self) -> str:
        given = (self.config.get("python_objects") or {}).get("dataset")
        return str(given or (self.config.get("dataset") or {}).get("name"))

    @property
    def expected_seeds(self) -> list[int]:
        s0, n = self.config.get("seed", 0), self.config.get("num_seeds")
        return list(range(int(s0), int(s0) + int(n))) if n is not None else []


def _parse_row(raw: dict) -> dict:
    """A results.csv row typed; in a grid run its ``strategy`` becomes the series
    ``strategy@setting`` (the strategy alone stays in ``base_strategy``)."""
    out = {}
    for k, v in raw.items():
        if k in ("strategy", "setting") or k is None:
            out[k] = v
        elif k in _INT_COLUMNS:
            out[k] = int(float(v))
        else:
            out[k] = float(v) if v not in ("", None) else float("nan")
    if out.get("setting"):
        out["base_strategy"], out["strategy"] = out["strategy"], series_name(out)
    return out


def _split_top(text: str) -> list[str]:
    """``text`` split at commas outside parentheses."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in [*out, cur] if p.strip()]


def _config_labels(config: dict) -> list[str]:
    """The strategy labels of ``config.strategy`` (as the run names them); with a
    ``config.grid``, one series ``label@setting`` per strategy and setting."""
    labels = []
    for item in _split_top(str(config.get("strategy") or "")):
        head = item.split("(", 1)[0]
        labels.append(item.split("=", 1)[0].strip() if "=" in head else "".join(item.split()))
    try:
        settings = grid_lib.parse(config.get("grid") or "")
    except ValueError:
        settings = ()
    if settings:
        labels = [f"{lb}@{grid_lib.name(g)}" for lb in labels for g in settings]
    return labels


def load_run(path: str, name: str | None = None) -> Run:
    """Reads one workdir.

    Raises:
      ReportError: ``path`` is not a folder or has no ``config.json``.
    """
    if not os.path.isdir(path):
        raise ReportError(f"{path!r} is not a folder (expected a jaxal workdir)")
    cfg_path = os.path.join(path, "config.json")
    if not os.path.exists(cfg_path):
        raise ReportError(f"{path!r} has no config.json: not a jaxal workdir")
    try:
        with open(cfg_path) as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ReportError(f"{cfg_path}: cannot read it ({e})") from None
    rows = []
    csv_path = os.path.join(path, "results.csv")
    if os.path.exists(csv_path):
        with open(csv_path, newline="") as f:
            rows = [_parse_row(r) for r in csv.DictReader(f)]
    indices = None
    npz_path = os.path.join(path, "labeled_indices.npz")
    if os.path.exists(npz_path):
        try:
            with np.load(npz_path) as z:
                indices = {k: np.asarray(z[k]) for k in z.files}
        except (OSError, ValueError):
            indices = None
    strategies = _config_labels(config)
    for r in rows:
        if r["strategy"] not in strategies:
            strategies.append(r["strategy"])
    return Run(
        path=path,
        name=name or os.path.basename(os.path.normpath(path)),
        config=config,
        rows=rows,
        done=os.path.exists(os.path.join(path, "DONE")),
        indices=indices,
        strategies=strategies,
    )


def _run_names(paths: Sequence[str]) -> list[str]:
    """Short unique names: the folder names, or the paths where those repeat."""
    base = [os.path.basename(os.path.normpath(p)) for p in paths]
    if len(set(base)) == len(base):
        return base
    names = [os.path.normpath(p) for p in paths]
    return names if len(set(names)) == len(names) else [f"{n}#{i}" for i, n in enumerate(names)]


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """``{"a.b": value}`` of a nested config; values as compact JSON text."""
    out = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = json.dumps(v)
    return out


def _is_setting(key: str) -> bool:
    return not any(key == k or (k.endswith(".") and key.startswith(k)) for k in _NOT_SETTINGS)


def differing_keys(configs: Sequence[dict]) -> list[str]:
    """Flattened keys whose values (or presence) differ between the configs."""
    flat = [flatten(c) for c in configs]
    keys = sorted(set().union(*flat)) if flat else []
    return [k for k in keys if len({f.get(k, "\0missing") for f in flat}) > 1]
