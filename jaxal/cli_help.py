"""``jaxal --help``: the flags, every config key with its default and comment,
and what is registered (strategies, models, initial pools, datasets)."""

from __future__ import annotations

import inspect
import re
import textwrap

USAGE = """\
usage: jaxal --config=FILE[:variant] --workdir=DIR [--config.<key>=<value> ...] [flags]
       jaxal report RUN_DIR [RUN_DIR ...] --out REPORT_DIR
       jaxal sweep --config=FILE[:variant] --workdir=ROOT [--launcher=local|slurm] ...

Runs an active-learning experiment: every strategy of the config, for all its
seeds, writing results.csv, labeled_indices.npz, learning_curve.png, ... to DIR.
Example: jaxal --config=configs/digits.py:smoke --workdir=runs/smoke --config.num_seeds=2
"""

FLAGS = [
    ("--config=FILE[:variant]", "the experiment config file (e.g. configs/digits.py:smoke)"),
    ("--workdir=DIR", "output folder; rerunning the same command resumes a stopped run"),
    ("--config.<key>=<value>", "override any config key below (budget/num_rounds: last wins)"),
    ("--print_config", "print the resolved config (after overrides) and exit"),
    ("--overwrite", "replace a finished run in --workdir"),
    ("--skip_finished", "exit 0 when --workdir already holds this finished run (sweeps)"),
    ("--no_progress", "hide the progress bar"),
    (
        "--coordinator_address, --num_processes, --process_id, --distributed",
        "join a multi-process run (see the README, Scale and durability)",
    ),
]


def _comments() -> dict[str, str]:
    """``{dotted key: comment}`` read from :func:`jaxal.config.base.base_config`'s source."""
    from jaxal.config import base as base_mod

    out, pending = {}, []
    for line in inspect.getsource(base_mod.base_config).splitlines():
        text = line.strip()
        if text.startswith("#"):
            pending.append(text.lstrip("# "))
            continue
        m = re.match(r"c\.([\w.]+)\s*=.*?(?:#\s*(.*))?$", text)
        if m:
            note = " ".join(pending + ([m.group(2)] if m.group(2) else []))
            if note:
                out[m.group(1)] = note
        pending = [] if text else pending
    return out


def _flatten(config, prefix="") -> list[tuple[str, object]]:
    out = []
    for key in sorted(config.keys()):
        value = config[key]
        name = f"{prefix}{key}"
        if hasattr(value, "keys") and not isinstance(value, dict):
            out += _flatten(value, name + ".")
        else:
            out.append((name, value))
    return out


def config_keys_text(config=None) -> str:
    """Every config key, its value (the default, or ``config``'s), and its comment."""
    from jaxal.config import base_config

    config = config or base_config()
    notes = _comments()
    lines, announced = [], set()
    for key, value in _flatten(config):
        if key.startswith("strategy_params.") and value is None:
            continue  # listed with the strategies below
        block = next((k for k in notes if key.startswith(k + ".")), None)
        if block is not None and block not in announced:
            announced.add(block)
            lines += textwrap.wrap(
                notes[block], 96, initial_indent="  # ", subsequent_indent="  # "
            )
        note = notes.get(key, "")
        lines.append(f"  {key} = {value!r}" + (f"    # {note}" if note else ""))
    return "\n".join(lines)


def registry_text() -> str:
    """Strategies with their parameters, models with theirs, initial pools, datasets."""
    from jaxal import initial, models, strategies
    from jaxal.data import BUNDLED

    def params(d: dict) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in d.items()) or "-"

    lines = ["strategies (config.strategy = '[label=]name[(key=value,...)],...'):"]
    lines += [f"  {n}({params(strategies.params_of(n))})" for n in strategies.names()]
    lines.append("models (config.model.name, other config.model.* keys are their parameters):")
    lines += [f"  {n}({params(models.params_of(n))})" for n in models.NAMES]
    lines.append("  'module:factory'  your own Flax Linen module factory(num_classes, **kw)")
    lines.append(f"initial pools (config.initial.strategy): {', '.join(initial.NAMES)}")
    lines.append(
        f"datasets (config.dataset.name): bundled {', '.join(BUNDLED)}; 'npz:PATH' (your "
        "arrays); any tfds image-classification name (mnist, cifar10, ...)"
    )
    return "\n".join(lines)


def variants_text(config_path: str | None) -> str:
    """The docstring of the config file named by ``--config`` (its variants), if any."""
    if not config_path:
        return ""
    import ast

    path = config_path.split(":", 1)[0]
    try:
        with open(path) as f:
            doc = ast.get_docstring(ast.parse(f.read())) or ""
    except (OSError, SyntaxError):
        return ""
    return f"{path}:\n" + textwrap.indent(doc, "  ") if doc else ""


def help_text(config_path: str | None = None) -> str:
    parts = [USAGE, "flags:"]
    parts += [f"  {f}\n      {d}" for f, d in FLAGS]
    variants = variants_text(config_path)
    if variants:
        parts += ["", variants]
    parts += ["", "config keys (defaults of jaxal.config.base_config):", config_keys_text()]
    parts += ["", registry_text()]
    return "\n".join(parts) + "\n"
