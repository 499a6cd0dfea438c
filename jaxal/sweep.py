"""``jaxal sweep``: expand a config file's ``get_hyper(h)`` into work units and launch them.

A config file declares a sweep the way big_vision configs do::

    def get_hyper(h):
        return h.product([
            h.sweep("config.strategy", ["margin", "entropy"]),
            h.sweep("config.train.learning_rate", [1e-3, 3e-3]),
        ])

Each point of the sweep is one work unit: an ordinary jaxal run (all its seeds,
vectorised as usual) in ``ROOT/<unit>/``, started as
``python -m jaxal --config=FILE[:variant] --workdir=ROOT/<unit> --config.k=v ...
--skip_finished``, so every unit gets the CLI's validation, resume and workdir
lock, and a unit that already finished with the same config is skipped (exit 0).
``ROOT/sweep.json`` lists the units and their overrides.

Launchers: ``local`` runs the units one after another (``--parallel=N`` at a
time); ``slurm`` writes ``ROOT/sweep.sbatch``, a job array with one task per
unit, and submits it with ``sbatch``. Units share JAX's persistent compilation
cache in ``ROOT/.jax_cache`` (``--compilation_cache``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import inspect
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

USAGE_EXIT = 2
SWEEP_JSON = "sweep.json"
SBATCH_SCRIPT = "sweep.sbatch"
CACHE_DIR = ".jax_cache"
_MAX_NAME = 120


class SweepError(ValueError):
    """A bad sweep declaration or command line (one line, exit 2)."""


# --- the ``h`` helper -----------------------------------------------------------


class Hyper:
    """What ``get_hyper(h)`` receives. Every method returns a list of ``{key: value}``."""

    @staticmethod
    def _key(key) -> str:
        if not isinstance(key, str) or not key.startswith("config.") or key == "config.":
            raise SweepError(f"sweep key {key!r} must start with 'config.', e.g. 'config.strategy'")
        return key

    def sweep(self, key: str, values) -> list[dict]:
        """One unit per value of ``key``."""
        key = self._key(key)
        values = list(values)
        if not values:
            raise SweepError(f"h.sweep({key!r}, ...) has no values")
        return [{key: v} for v in values]

    def fixed(self, key: str, value) -> list[dict]:
        """``key`` set to ``value`` in every unit."""
        return [{self._key(key): value}]

    def product(self, sweeps) -> list[dict]:
        """The cartesian product of ``sweeps`` (the first varies slowest)."""
        sweeps = [list(s) for s in sweeps]
        return [_merge(combo, "product") for combo in itertools.product(*sweeps)]

    def zip(self, sweeps) -> list[dict]:
        """Element-wise: unit i takes the i-th point of every sweep (equal lengths)."""
        sweeps = [list(s) for s in sweeps]
        lengths = {len(s) for s in sweeps}
        if len(lengths) > 1:
            raise SweepError(f"h.zip needs sweeps of equal length; got lengths {sorted(lengths)}")
        return [_merge(combo, "zip") for combo in zip(*sweeps, strict=True)]


def _merge(parts, how: str) -> dict:
    out: dict = {}
    for part in parts:
        for key, value in part.items():
            if key in out:
                raise SweepError(f"h.{how} sets {key} twice")
            out[key] = value
    return out


# --- work units -----------------------------------------------------------------


def _value_arg(value) -> str:
    """``value`` as ``--config.<key>=`` parses it back."""
    return value if isinstance(value, str) else repr(value)


def _name_value(value) -> str:
    if isinstance(value, tuple | list):
        return "-".join(_name_value(v) for v in value)
    return _value_arg(value)


def unit_name(point: dict) -> str:
    """A readable, filesystem-safe name: ``strategy=margin,train.learning_rate=0.01``
    (a tuple ``(16, 4)`` reads ``16-4``; other characters become ``_``)."""
    if not point:
        return "default"
    text = ",".join(f"{k.removeprefix('config.')}={_name_value(v)}" for k, v in point.items())
    name = re.sub(r"[^A-Za-z0-9._=,+-]+", "_", text).strip("._") or "unit"
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        name = f"{name[: _MAX_NAME - 9]}-{digest}"
    return name


def expand(get_hyper, variant: str | None = None) -> list[dict]:
    """The points of ``get_hyper(h)`` (``get_hyper(h, variant)`` if it takes two)."""
    try:
        takes_variant = len(inspect.signature(get_hyper).parameters) >= 2
    except (TypeError, ValueError):
        takes_variant = False
    points = get_hyper(Hyper(), variant) if takes_variant else get_hyper(Hyper())
    if isinstance(points, dict):
        points = [points]
    points = list(points)
    if not points:
        raise SweepError("get_hyper(h) returned no units")
    for p in points:
        if not isinstance(p, dict):
            raise SweepError(f"get_hyper(h) must return a list of dicts; got {p!r}")
        for k in p:
            Hyper._key(k)
    return points


def units_of(points: list[dict]) -> list[dict]:
    """``[{"name", "overrides"}]`` with unique names."""
    seen: dict[str, int] = {}
    units = []
    for point in points:
        name = unit_name(point)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}-{seen[name]}"
        units.append({"name": name, "overrides": dict(point)})
    return units


def _load_module(path: str):
    if not os.path.isfile(path):
        raise SweepError(f"--config: no such config file {path!r}")
    spec = importlib.util.spec_from_file_location("_jaxal_sweep_config", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the config file's own error, in one line
        raise SweepError(f"--config={path}: {type(e).__name__}: {e}") from None
    return module


def _check_keys(config, units: list[dict], extra: list[tuple[str, str]]) -> None:
    """Every swept / extra key exists in the config (the units validate the values)."""
    keys = [k for u in units for k in u["overrides"]] + [k for k, _ in extra]
    for key in dict.fromkeys(keys):
        node, path = config, "config"
        for part in key.split(".")[1:]:
            if not hasattr(node, "keys") or part not in node.keys():
                raise SweepError(f"unknown config key {key}: {path} has no field {part!r}")
            node, path = node[part], f"{path}.{part}"


# --- command line ---------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jaxal sweep",
        description="Expand get_hyper(h) of a config file into work units ROOT/<unit>/ "
        "and run them (local) or submit them as a job array (slurm). Extra "
        "--config.<key>=<value> flags apply to every unit.",
    )
    p.add_argument("--config", required=True, help="FILE[:variant] with get_config and get_hyper")
    p.add_argument("--workdir", required=True, help="sweep root; unit u runs in ROOT/u/")
    p.add_argument("--launcher", choices=("local", "slurm"), default="local")
    p.add_argument(
        "--parallel",
        type=int,
        default=None,
        help="local: units at a time (default 1); slurm: array tasks at a time (%%N)",
    )
    p.add_argument("--dry_run", action="store_true", help="list the units; run nothing")
    p.add_argument(
        "--compilation_cache",
        default=None,
        help="JAX persistent compilation cache shared by the units "
        f"(default ROOT/{CACHE_DIR}; 'none' disables it)",
    )
    p.add_argument("--slurm_partition", default=None)
    p.add_argument("--slurm_time", default=None, help="e.g. 02:00:00")
    p.add_argument("--slurm_gpus", type=int, default=None, help="GPUs per unit")
    p.add_argument("--slurm_cpus", type=int, default=None, help="CPUs per unit")
    p.add_argument("--slurm_mem", default=None, help="e.g. 32G")
    p.add_argument(
        "--slurm_extra",
        action="append",
        default=[],
        help="extra sbatch option, e.g. --slurm_extra=--account=proj (repeatable)",
    )
    return p


def _extra_overrides(rest: list[str]) -> list[tuple[str, str]]:
    out = []
    for arg in rest:
        name, eq, value = arg.lstrip("-").partition("=")
        if not arg.startswith("--config.") or not eq:
            raise SweepError(
                f"unexpected argument {arg!r}; overrides for every unit are --config.<key>=<value>"
            )
        out.append((name, value))
    return out


def _unit_args(config_arg: str, root: str, unit: dict, extra) -> list[str]:
    args = [f"--config={config_arg}", f"--workdir={os.path.join(root, unit['name'])}"]
    args += [f"--{k}={v}" for k, v in extra]  # before the swept values: those win
    args += [f"--{k}={_value_arg(v)}" for k, v in unit["overrides"].items()]
    return args


def _cache_env(cache: str | None, root: str) -> dict[str, str]:
    if cache is not None and cache.strip().lower() == "none":
        return {}
    return {
        "JAX_COMPILATION_CACHE_DIR": os.path.abspath(cache or os.path.join(root, CACHE_DIR)),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0",
    }


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, rest = _parser().parse_known_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2)
        return int(e.code or 0)
    try:
        return _sweep(args, rest)
    except SweepError as e:
        print(f"jaxal sweep: error: {e}", file=sys.stderr)
        return USAGE_EXIT


def _sweep(args, rest: list[str]) -> int:
    extra = _extra_overrides(rest)
    if args.parallel is not None and args.parallel < 1:
        raise SweepError(f"--parallel={args.parallel} must be >= 1")
    path, _, variant = args.config.partition(":")
    module = _load_module(path)
    get_hyper = getattr(module, "get_hyper", None)
    if get_hyper is None:
        raise SweepError(f"--config: {path} defines no get_hyper(h) to sweep")
    units = units_of(expand(get_hyper, variant or None))
    swept = {k for u in units for k in u["overrides"]}
    both = sorted(swept & {k for k, _ in extra})
    if both:
        raise SweepError(f"--{both[0]} is swept by get_hyper; it cannot also be given")
    get_config = getattr(module, "get_config", None)
    if get_config is not None:
        try:
            config = get_config(variant) if variant else get_config()
        except Exception as e:
            raise SweepError(f"--config={args.config}: {type(e).__name__}: {e}") from None
        _check_keys(config, units, extra)

    root = os.path.abspath(args.workdir)
    config_arg = os.path.abspath(path) + (f":{variant}" if variant else "")
    for u in units:
        u["args"] = _unit_args(config_arg, root, u, extra)
    env = _cache_env(args.compilation_cache, root)

    if args.dry_run:
        print(f"jaxal sweep: {len(units)} units in {root} (dry run; nothing started)")
        for i, u in enumerate(units):
            print(f"  [{i}] {u['name']}: python -m jaxal {shlex.join(u['args'])}")
        return 0

    os.makedirs(root, exist_ok=True)
    if env:
        os.makedirs(env["JAX_COMPILATION_CACHE_DIR"], exist_ok=True)
    _write_json(
        os.path.join(root, SWEEP_JSON),
        {
            "config": config_arg,
            "launcher": args.launcher,
            "overrides": dict(extra),
            "env": env,
            "units": [
                {"name": u["name"], "overrides": u["overrides"], "args": u["args"]} for u in units
            ],
        },
    )
    if args.launcher == "slurm":
        return _launch_slurm(args, root, units, env)
    return _launch_local(root, units, env, args.parallel or 1)


# --- launchers ------------------------------------------------------------------


def _launch_local(root: str, units: list[dict], env: dict, parallel: int) -> int:
    from jaxal.workdir import DONE

    full_env = {**os.environ, **env}
    log_dir = os.path.join(root, "logs")
    if parallel > 1:
        os.makedirs(log_dir, exist_ok=True)
    print(f"jaxal sweep: {len(units)} units in {root}, {parallel} at a time")

    def one(index: int) -> tuple[int, str]:
        u = units[index]
        finished = os.path.exists(os.path.join(root, u["name"], DONE))
        cmd = [sys.executable, "-m", "jaxal", *u["args"], "--skip_finished"]
        if parallel == 1:
            print(f"jaxal sweep: [{index + 1}/{len(units)}] {u['name']}", flush=True)
            rc = subprocess.run(cmd, env=full_env).returncode
            return rc, "finished earlier" if finished and rc == 0 else ""
        log = os.path.join(log_dir, f"{u['name']}.log")
        with open(log, "w") as f:
            rc = subprocess.run(
                [*cmd, "--no_progress"], env=full_env, stdout=f, stderr=subprocess.STDOUT
            ).returncode
        note = "finished earlier" if finished and rc == 0 else f"log {log}"
        print(f"jaxal sweep: {u['name']}: exit {rc} ({note})", flush=True)
        return rc, note

    try:
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            results = list(pool.map(one, range(len(units))))
    except KeyboardInterrupt:
        print("jaxal sweep: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    failed = [(u["name"], rc) for u, (rc, _) in zip(units, results, strict=True) if rc != 0]
    skipped = sum(1 for rc, note in results if rc == 0 and note == "finished earlier")
    print(
        f"jaxal sweep: {len(units) - len(failed)}/{len(units)} units ok "
        f"({skipped} finished earlier, skipped); sweep.json in {root}"
    )
    for name, rc in failed:
        print(f"jaxal sweep: unit {name} failed with exit {rc}", file=sys.stderr)
    return failed[0][1] if failed else 0


def sbatch_script(args, root: str, n_units: int, env: dict) -> str:
    """The job-array script: task i runs unit i of ``ROOT/sweep.json``."""
    array = f"0-{n_units - 1}" + (f"%{args.parallel}" if args.parallel else "")
    lines = [
        "#!/bin/bash",
        "#SBATCH --job-name=jaxal-sweep",
        f"#SBATCH --array={array}",
        f"#SBATCH --output={os.path.join(root, 'logs', 'slurm-%A_%a.out')}",
    ]
    for flag, value in (
        ("partition", args.slurm_partition),
        ("time", args.slurm_time),
        ("gpus", args.slurm_gpus),
        ("cpus-per-task", args.slurm_cpus),
        ("mem", args.slurm_mem),
    ):
        if value is not None:
            lines.append(f"#SBATCH --{flag}={value}")
    for extra in args.slurm_extra:
        extra = extra.strip().removeprefix("#SBATCH").strip()
        lines.append(f"#SBATCH {extra if extra.startswith('-') else '--' + extra}")
    lines += ["", "set -euo pipefail"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    runner = (
        "import json, os, sys; "
        "u = json.load(open(sys.argv[1]))['units'][int(os.environ['SLURM_ARRAY_TASK_ID'])]; "
        "print('jaxal sweep: unit', u['name'], flush=True); "
        "os.execv(sys.executable, [sys.executable, '-m', 'jaxal', *u['args'], "
        "'--skip_finished', '--no_progress'])"
    )
    lines += [
        "# task $SLURM_ARRAY_TASK_ID runs unit $SLURM_ARRAY_TASK_ID of sweep.json with "
        "--skip_finished",
        f"exec {shlex.quote(sys.executable)} -c {shlex.quote(runner)} "
        f"{shlex.quote(os.path.join(root, SWEEP_JSON))}",
        "",
    ]
    return "\n".join(lines)


def _launch_slurm(args, root: str, units: list[dict], env: dict) -> int:
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    script = os.path.join(root, SBATCH_SCRIPT)
    with open(script, "w") as f:
        f.write(sbatch_script(args, root, len(units), env))
    try:
        done = subprocess.run(["sbatch", script], capture_output=True, text=True)
    except FileNotFoundError:
        raise SweepError(f"sbatch not found on PATH; the job script is {script}") from None
    if done.returncode != 0:
        err = " ".join((done.stderr or done.stdout).split())
        print(f"jaxal sweep: error: sbatch {script} failed: {err}", file=sys.stderr)
        return done.returncode
    found = re.search(r"(\d+)", done.stdout)
    job = found.group(1) if found else done.stdout.strip()
    print(
        f"jaxal sweep: submitted job array {job} ({len(units)} units, script {script}); "
        f"logs in {os.path.join(root, 'logs')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
