"""A whole active-learning experiment, end to end: jaxal vs baal's standard loop
vs a lean hand-written PyTorch loop, each implementation in its own process
(issue 9, item 1).

Protocols (``--protocol``), read from jaxal's own config files:

* ``mnist_bald`` -- ``configs/mnist_bald.py`` with strategies random and bald:
  bundled mnist5k (4,000 pool / 1,000 test, standardised), 2 labels per class
  to start, 10 per round up to 200 (19 acquisitions, 20 trainings), the
  BALD-paper CNN re-initialised every round, Adam 1e-3, 50 epochs, batch 64,
  BALD from T = 20 MC-dropout passes, test accuracy after every round;
* ``digits`` -- ``configs/digits.py`` (the quickstart): bundled 8x8 digits
  (1,347 / 450), MLP 128 without dropout, 2 labels per class, 20 per round up
  to 200, Adam 3e-3, 60 epochs, batch 32; random, least confidence, margin,
  entropy.

The driver first exports, in a jaxal child process, the pool and test arrays
exactly as ``jaxal.data.load`` gives them to a run, plus jaxal's class-balanced
initial pool of every seed (the same ``jax.random`` draws a run makes), into
one ``.npz``; the PyTorch workers (``benchmarks/peers/experiment_torch.py``)
load it, so all three start from byte-identical arrays (checked by hash) and
the same initial labels. Then it runs:

* ``jaxal``: the CLI, as a user runs it, all seeds in one process:
  ``python -m jaxal --config=configs/<protocol>.py --config.num_seeds=S
  --config.strategy=... --workdir=... --overwrite --no_progress`` (XLA
  defaults); phase times from its ``results.csv``;
* ``baal`` and ``torch``: one process per seed (how those loops run), each
  running all strategies of that seed, ``torch.set_num_threads(--torch_threads)``
  and the same value in ``OMP/MKL/OPENBLAS_NUM_THREADS``. ``--peer_seeds`` < S
  runs fewer; the table then gives their measured figures and, labelled as
  such, a linear extrapolation to S seeds (the seeds are independent
  sequential processes).

Reported per implementation: process wall time (start to exit), train / eval /
score / select seconds (for jaxal: the sums over ``results.csv``, whose phase
columns are the wall time of the phase for all seeds / S; round 0 includes
XLA compilation, estimated as round 0 minus the median of later rounds with the
same number of steps per epoch), "other" = wall - phases (start-up, imports,
data, checkpoints and reports), peak RSS (``ru_maxrss`` of the child from
``wait4``) and the final test accuracy per strategy (mean +- sample std over
seeds), with per-round learning curves in the JSON.

    .venv/bin/python benchmarks/experiment.py --protocol mnist_bald
    .venv/bin/python benchmarks/experiment.py --protocol digits
    .venv/bin/python benchmarks/experiment.py --protocol mnist_bald --smoke   # ~1 min per impl

Options: ``--impls jaxal,baal,torch``, ``--seeds`` (8; 2 with ``--smoke``),
``--peer_seeds``, ``--torch_threads`` (2), ``--torch_mc full|head`` (the lean
loop's BALD passes; ``full`` by default, jaxal's config uses ``head``, which is
exact for this CNN), ``--torch_init flax|torch`` (``flax``: LeCun-normal
kernels and zero biases as jaxal's models; ``torch``: PyTorch's defaults),
``--strategies``, ``--peers_python``, ``--workdir``, ``--out`` (default
``runs/benchmarks/experiment_<protocol>[_smoke].json``; ``runs/`` is
git-ignored), ``--jaxal_args`` (extra ``--config.*`` flags for the jaxal run).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORKER = HERE / "peers" / "experiment_torch.py"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
PHASES = ("train", "eval", "score", "select")
# what benchmarks/peers/experiment_torch.py implements
WORKER_STRATEGIES = ("random", "bald", "least_confidence", "margin", "entropy")
IMPLS = ("jaxal", "baal", "torch")
PEERS = ("baal", "torch")
PEER_PYTHONS = (
    "/tmp/peers/venv/bin/python",
    "/work/peers-venv/venv/bin/python",
    "/tmp/peers-venv/bin/python",
)

PROTOCOLS = {
    "mnist_bald": dict(config="configs/mnist_bald.py", strategies="random,bald"),
    "digits": dict(config="configs/digits.py", strategies="random,least_confidence,margin,entropy"),
}
SMOKE = {"budget": 40, "train.epochs": 2, "mc.samples": 4}
SMOKE_SEEDS = 2


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


# ---------------------------------------------------------------------------
# The export child (jaxal's interpreter): spec + arrays + initial pools
# ---------------------------------------------------------------------------


def prepare(config_path: str, overrides: dict, out_npz: str, out_spec: str) -> None:
    """Writes the protocol as JSON and the data + initial pools as ``.npz``."""
    import importlib.util
    import inspect

    import jax
    import jax.numpy as jnp

    import jaxal
    import jaxal.data
    from jaxal import models
    from jaxal.config import apply_overrides
    from jaxal.initial import initial_pool, initial_size
    from jaxal.rng import Purpose, derive, seed_keys

    spec_ = importlib.util.spec_from_file_location("protocol_config", config_path)
    mod = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(mod)
    cfg = apply_overrides(mod.get_config(None), overrides)
    t = cfg.train
    for key, ok in (
        ("train.optimizer", t.optimizer == "adam"),
        ("train.weight_decay", t.weight_decay == 0.0),
        ("train.schedule", t.schedule == "constant"),
        ("train.warmup_epochs", t.warmup_epochs == 0),
        ("train.reinit", bool(t.reinit)),
        ("train.augment", not (t.augment.crop_padding or t.augment.flip)),
        ("train.retrains", t.retrains == 1),
        ("ensemble_size", cfg.ensemble_size == 1),
        ("dataset.val_size", cfg.dataset.val_size == 0),
        ("train.early_stop", t.early_stop.train_accuracy is None and t.early_stop.patience is None),
        ("stop.patience", cfg.stop.patience is None),
        ("labeling_rate.schedule", cfg.labeling_rate.schedule == "fixed"),
        ("train.init_from", not t.init_from),
        ("grid", not cfg.grid),
    ):
        if not ok:
            raise SystemExit(f"the PyTorch workers do not implement this {key}; use the default")
    ds = jaxal.data.load(cfg.dataset)
    defaults = {
        k: v.default
        for k, v in inspect.signature(models.REGISTRY[cfg.model.name]).parameters.items()
        if v.kind == v.KEYWORD_ONLY
    }
    mparams = {
        k: (cfg.model[k] if cfg.model.get(k) is not None else defaults.get(k))
        for k in ("dropout", "conv_dropout", "hidden")
        if k in defaults
    }
    padding, conv = cfg.model.get("padding"), cfg.model.get("conv")
    if padding not in (None, "VALID") or conv not in (None, "xla"):
        raise SystemExit("the PyTorch workers implement model.padding=VALID, model.conv=xla only")
    if cfg.model.name not in ("cnn", "mlp"):
        raise SystemExit(f"the PyTorch workers implement models cnn and mlp, not {cfg.model.name}")
    strategies = [x.strip() for x in str(cfg.strategy).split(",")]
    unknown = [x for x in strategies if x not in WORKER_STRATEGIES]
    if unknown:
        raise SystemExit(
            f"the PyTorch workers implement {', '.join(WORKER_STRATEGIES)}; not {unknown}"
        )
    seeds = [cfg.seed + i for i in range(cfg.num_seeds)]
    n0 = initial_size(cfg.initial, ds.num_classes)
    y = jnp.asarray(ds.y_train)
    init = []
    for key in seed_keys(seeds):
        _, order, n = initial_pool(
            derive(key, 0, Purpose.INITIAL_POOL), y, cfg.initial, ds.num_classes, cfg.budget
        )
        init.append(np.asarray(order[: int(n)]))
    initial = np.stack(init).astype(np.int32)
    assert initial.shape[1] == n0
    arrays = dict(x_train=ds.x_train, y_train=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
    np.savez(out_npz, **arrays, initial=initial, seed0=np.int64(cfg.seed))
    spec = dict(
        dataset=ds.name,
        num_pool=len(ds.y_train),
        num_test=len(ds.y_test),
        num_classes=int(ds.num_classes),
        image_shape=list(ds.x_train.shape[1:]),
        normalize=cfg.dataset.normalize,
        model=cfg.model.name,
        dropout=float(mparams.get("dropout") or 0.0),
        conv_dropout=float(mparams.get("conv_dropout") or 0.0),
        hidden=[int(w) for w in (mparams.get("hidden") or ())],
        strategies=strategies,
        seeds=seeds,
        initial=cfg.initial.strategy,
        initial_size=int(n0),
        query_size=int(cfg.query_size),
        budget=int(cfg.budget),
        optimizer=t.optimizer,
        learning_rate=float(t.learning_rate),
        epochs=int(t.epochs),
        batch_size=int(t.batch_size),
        eval_batch_size=int(t.eval_batch_size),
        score_batch_size=int(cfg.score_batch_size),
        mc_samples=int(cfg.mc.samples),
        mc_mode=cfg.mc.mode,
        hashes={k: _sha(v) for k, v in arrays.items()},
        jaxal_file=jaxal.__file__,
        jax_version=jax.__version__,
        jax_backend=jax.default_backend(),
    )
    with open(out_spec, "w") as f:
        json.dump(spec, f, indent=1)


# ---------------------------------------------------------------------------
# Children
# ---------------------------------------------------------------------------


def run_child(cmd: list[str], env: dict, log_path: Path, timeout: float | None) -> dict:
    """Runs ``cmd`` to its end; wall time, exit status and the child's own
    ``ru_maxrss`` (``wait4``: not the driver's), stdout+stderr in ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(cmd) + "\n")
        log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log_path.read_text()
    return dict(
        rc=proc.returncode,
        wall_s=wall,
        peak_rss_mb=ru.ru_maxrss / 1024.0,
        user_s=ru.ru_utime,
        sys_s=ru.ru_stime,
        output=text,
    )


def _fail(name: str, res: dict, log_path: Path) -> None:
    tail = "\n".join(res["output"].splitlines()[-25:])
    raise SystemExit(f"{name} failed (exit {res['rc']}); log {log_path}:\n{tail}")


def _result_line(text: str) -> dict:
    lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    return json.loads(lines[-1][len("RESULT ") :])


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def _mean_std(v: list[float]) -> tuple[float, float]:
    return (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)


def accuracy_figures(rows: list[dict], budget: int) -> dict:
    """Final test accuracy per strategy and the mean learning curve."""
    out = {}
    for s in dict.fromkeys(r["strategy"] for r in rows):
        rs = [r for r in rows if r["strategy"] == s]
        final = [r["test_accuracy"] for r in rs if r["num_labeled"] == budget]
        curve = {}
        for r in rs:
            curve.setdefault(r["num_labeled"], []).append(r["test_accuracy"])
        m, sd = _mean_std(final)
        out[s] = dict(
            final_mean=m,
            final_std=sd,
            final_n=len(final),
            final=final,
            curve={int(n): float(np.mean(v)) for n, v in sorted(curve.items())},
        )
    return out


def compile_estimate(rows: list[dict], batch: int) -> dict:
    """jaxal: per phase, sum over strategies of (round-0 wall - the median wall
    of later rounds doing the same work), clamped at 0."""
    est: dict = {p: None for p in PHASES}
    for s in dict.fromkeys(r["strategy"] for r in rows):
        per_round: dict[int, dict] = {}
        for r in rows:
            if r["strategy"] == s:
                blank = {p: 0.0 for p in PHASES} | {"n": r["num_labeled"]}
                d = per_round.setdefault(r["round"], blank)
                for p in PHASES:
                    d[p] += r[f"{p}_seconds"]  # the columns are wall / S: the sum is the wall
        if 0 not in per_round or len(per_round) < 2:
            continue
        last = max(per_round)
        r0 = per_round[0]
        steps0 = -(-r0["n"] // batch)
        for p in PHASES:
            # score/select: the last round scores nothing
            later = [
                d for k, d in per_round.items() if k > 0 and (p in ("train", "eval") or k < last)
            ]
            if p == "train":
                same = [d for d in later if -(-d["n"] // batch) == steps0]
                later = same or later[:1]
            if later:
                gap = max(0.0, r0[p] - statistics.median(d[p] for d in later))
                est[p] = (est[p] or 0.0) + gap
    est["total"] = sum(est[p] or 0.0 for p in PHASES)
    return est


_COMPILE_LOG = (
    (
        "trace",
        re.compile(r"Finished tracing (?:\+ transforming )?(\S+) for \w+ in ([0-9.eE+-]+) sec"),
    ),
    (
        "lower",
        re.compile(r"Finished jaxpr to MLIR module conversion \w+\((\S+)\) in ([0-9.eE+-]+) sec"),
    ),
    ("compile", re.compile(r"Finished XLA compilation of \w+\((\S+)\) in ([0-9.eE+-]+) sec")),
)


def compile_log(text: str) -> dict | None:
    """Sums JAX's ``JAX_LOG_COMPILES`` lines: tracing, lowering and XLA
    compilation seconds, in total and per jitted function (with its number of
    XLA compilations). ``None`` when the log has none."""
    total = {k: 0.0 for k, _ in _COMPILE_LOG}
    per: dict[str, dict] = {}
    for line in text.splitlines():
        if "Finished " not in line:
            continue
        for kind, rx in _COMPILE_LOG:
            m = rx.search(line)
            if m:
                name, sec = m.group(1), float(m.group(2))
                total[kind] += sec
                f = per.setdefault(name, {"seconds": 0.0, "compilations": 0})
                f["seconds"] += sec
                f["compilations"] += kind == "compile"
                break
    if not per:
        return None
    top = dict(sorted(per.items(), key=lambda kv: -kv[1]["seconds"]))
    return dict(
        total_s=sum(total.values()),
        **{f"{k}_s": v for k, v in total.items()},
        compilations=sum(f["compilations"] for f in per.values()),
        functions=top,
    )


def jaxal_figures(workdir: Path, spec: dict, res: dict) -> dict:
    with open(workdir / "results.csv", newline="") as f:
        rows = []
        for raw in csv.DictReader(f):
            r = {
                "strategy": raw["strategy"],
                "seed": int(raw["seed"]),
                "round": int(raw["round"]),
                "num_labeled": int(raw["num_labeled"]),
                "test_accuracy": float(raw["test_accuracy"]),
            }
            r.update({f"{p}_seconds": float(raw[f"{p}_seconds"]) for p in PHASES})
            rows.append(r)
    phases = {p: sum(r[f"{p}_seconds"] for r in rows) for p in PHASES}
    initial_ok = None
    try:
        with np.load(workdir / "labeled_indices.npz") as f:
            exported = np.asarray(spec["_initial"])
            checks = []
            for s in spec["strategies"]:
                order, rnd = f[f"{s}/order"], f[f"{s}/round"]
                for i in range(order.shape[0]):
                    got = sorted(order[i][rnd[i] == 0].tolist())
                    checks.append(got == sorted(exported[i].tolist()))
            initial_ok = all(checks)
    except (OSError, KeyError):
        pass
    return dict(
        seeds_measured=len(spec["seeds"]),
        processes=1,
        wall_s=res["wall_s"],
        peak_rss_mb=res["peak_rss_mb"],
        user_s=res["user_s"],
        sys_s=res["sys_s"],
        phases=phases,
        other_s=res["wall_s"] - sum(phases.values()),
        compile_estimate=compile_estimate(rows, spec["batch_size"]),
        compile_log=compile_log(res["output"]),
        accuracy=accuracy_figures(rows, spec["budget"]),
        same_initial_pools=initial_ok,
        rows=rows,
    )


def peer_figures(results: list[dict], procs: list[dict], spec: dict, seeds: int) -> dict:
    rows = [r for res in results for r in res["rows"]]
    phases = {p: sum(r[f"{p}_seconds"] for r in rows) for p in PHASES}
    walls = [p["wall_s"] for p in procs]
    n = len(results)
    exported = np.asarray(spec["_initial"])
    initial_ok = all(
        sorted(res["orders"][s][: spec["initial_size"]])
        == sorted(exported[res["seed"] - spec["seeds"][0]].tolist())
        for res in results
        for s in res["orders"]
    )
    hashes_ok = all(res["hashes"] == spec["hashes"] for res in results)
    fig = dict(
        seeds_measured=n,
        processes=n,
        wall_s=sum(walls),
        wall_per_seed_s=walls,
        peak_rss_mb=max(p["peak_rss_mb"] for p in procs),
        user_s=sum(p["user_s"] for p in procs),
        sys_s=sum(p["sys_s"] for p in procs),
        phases=phases,
        other_s=sum(walls) - sum(phases.values()),
        import_s=[r["import_s"] for r in results],
        versions=results[0]["versions"],
        threads=results[0]["threads"],
        mc=results[0]["mc"],
        accuracy=accuracy_figures(rows, spec["budget"]),
        same_initial_pools=initial_ok,
        same_arrays=hashes_ok,
        rows=rows,
    )
    if n != seeds:
        f = seeds / n
        fig["extrapolated"] = dict(
            seeds=seeds,
            factor=f,
            wall_per_seed_mean_s=fig["wall_s"] / n,
            wall_s=fig["wall_s"] * f,
            phases={p: v * f for p, v in phases.items()},
            other_s=fig["other_s"] * f,
            note=f"linear: measured figures x {seeds}/{n} (independent sequential processes)",
        )
    return fig


def at_seeds(fig: dict) -> tuple[float, dict, float, bool]:
    """(wall, phases, other) at the jaxal seed count, and whether extrapolated."""
    e = fig.get("extrapolated")
    if e:
        return e["wall_s"], e["phases"], e["other_s"], True
    return fig["wall_s"], fig["phases"], fig["other_s"], False


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------


def _label(impl: str, fig: dict) -> str:
    if impl == "jaxal":
        return "jaxal"
    if impl == "baal":
        return f"baal {fig['versions'].get('baal', '')}".strip()
    return f"lean torch (mc {fig['mc']})"


def tables(out: dict) -> str:
    figs, spec, seeds = out["impls"], out["spec"], out["seeds"]
    lines = []
    lines.append(
        "| implementation | seeds | process wall s | train s | eval s | score s | select s "
        "| other s | compile s | peak RSS MB | wall / jaxal |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    jw = figs["jaxal"]["wall_s"] if "jaxal" in figs else None

    def row(name, n, wall, ph, other, comp, rss, ratio):
        cells = [f"{ph[p]:,.1f}" for p in PHASES]
        lines.append(
            f"| {name} | {n} | {wall:,.1f} | "
            + " | ".join(cells)
            + f" | {other:,.1f} | {comp} | {rss} | {ratio} |"
        )

    for impl, fig in figs.items():
        name = _label(impl, fig)
        comp = "-"
        if impl == "jaxal":
            logged = fig.get("compile_log")
            comp = (
                f"{logged['total_s']:,.1f} (logged)"
                if logged
                else f"{fig['compile_estimate']['total']:,.1f} (est.)"
            )
        measured = f"{fig['seeds_measured']} (measured)"
        if impl == "jaxal":
            row(
                name,
                f"{seeds} (measured, 1 process)",
                fig["wall_s"],
                fig["phases"],
                fig["other_s"],
                comp,
                f"{fig['peak_rss_mb']:,.0f}",
                "1.00",
            )
            continue
        e = fig.get("extrapolated")
        ratio = f"{fig['wall_s'] / jw:.2f}" if (jw and not e) else "-"
        row(
            name,
            measured + f", {fig['processes']} process" + ("es" if fig["processes"] > 1 else ""),
            fig["wall_s"],
            fig["phases"],
            fig["other_s"],
            comp,
            f"{fig['peak_rss_mb']:,.0f} (max of processes)",
            ratio,
        )
        if e:
            ratio = f"**{e['wall_s'] / jw:.2f}** (extrapolated)" if jw else "-"
            row(
                f"{name}, extrapolated",
                f"{seeds} (extrapolated x{e['factor']:.2f})",
                e["wall_s"],
                e["phases"],
                e["other_s"],
                comp,
                "-",
                ratio,
            )
    if jw:
        peers = [i for i in figs if i != "jaxal"]
        if peers:
            lines.append("")
            lines.append(
                "| ratio (at "
                + f"{seeds} seeds) | "
                + " | ".join(f"{_label(i, figs[i])} / jaxal" for i in peers)
                + " |"
            )
            lines.append("|---" + "|---:" * len(peers) + "|")
            jwall, jph = figs["jaxal"]["wall_s"], figs["jaxal"]["phases"]
            keys = [("process wall", ())] + [(p, (p,)) for p in PHASES]
            keys.append(("score + select", ("score", "select")))
            for label, parts in keys:
                cells = []
                den = sum(jph[p] for p in parts) if parts else jwall
                for i in peers:
                    w, ph, _, ex = at_seeds(figs[i])
                    val = sum(ph[p] for p in parts) if parts else w
                    cell = "-" if den <= 0 else f"{val / den:.2f}"
                    cells.append(cell + (" (extrap.)" if ex else ""))
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    impls = list(figs)
    lines.append(
        f"| final test accuracy % ({spec['budget']} labels) | "
        + " | ".join(f"{_label(i, figs[i])} ({figs[i]['seeds_measured']} seeds)" for i in impls)
        + " |"
    )
    lines.append("|---" + "|---:" * len(impls) + "|")
    for s in spec["strategies"]:
        cells = []
        ref = figs.get("jaxal", {}).get("accuracy", {}).get(s)
        for i in impls:
            a = figs[i]["accuracy"].get(s)
            if not a:
                cells.append("n/a")
                continue
            cell = f"{100 * a['final_mean']:.1f} ± {100 * a['final_std']:.1f}"
            if ref and i != "jaxal":
                se = np.hypot(
                    ref["final_std"] / np.sqrt(max(ref["final_n"], 1)),
                    a["final_std"] / np.sqrt(max(a["final_n"], 1)),
                )
                d = a["final_mean"] - ref["final_mean"]
                cell += f" (Δ {100 * d:+.1f}" + (f", {d / se:+.1f} SE)" if se > 0 else ")")
            cells.append(cell)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(out: dict) -> str:
    figs, spec = out["impls"], out["spec"]
    n_rounds = (spec["budget"] - spec["initial_size"]) // spec["query_size"]
    ln = [
        f"Protocol `{out['protocol']}`{' (smoke)' if out['smoke'] else ''}: {spec['dataset']} "
        f"({spec['num_pool']} pool / {spec['num_test']} test, {spec['normalize']}), "
        f"{spec['model']}, "
        f"{spec['initial']} {spec['initial_size']} -> {spec['budget']} labels by "
        f"{spec['query_size']} ({n_rounds} acquisitions, {n_rounds + 1} trainings), Adam "
        f"{spec['learning_rate']:g}, {spec['epochs']} epochs, batch {spec['batch_size']}, "
        f"strategies {', '.join(spec['strategies'])}"
        + (
            f", T = {spec['mc_samples']} MC-dropout passes (jaxal mc.mode={spec['mc_mode']})"
            if any(s in ("bald",) for s in spec["strategies"])
            else ""
        )
        + ".",
        f"Machine: {out['machine']['cpu']}, {out['machine']['cores']} cores; load average "
        f"{out['machine']['load_before']} before, {out['machine']['load_after']} after; "
        f"{out['date']}; jaxal from `{spec['jaxal_file']}` ({out['commit']}), "
        f"JAX {spec['jax_version']} ({spec['jax_backend']}, default XLA threads).",
    ]
    for i, f in figs.items():
        if "date" in f:
            ln.append(
                f"{_label(i, f)} measured {f['date']}, load average {f['load_before']} "
                f"before, {f['load_after']} after."
            )
        if i == "jaxal":
            ln.append(
                f"jaxal: same initial pools as exported: {f['same_initial_pools']}; "
                "round 0 minus later rounds per phase (s): "
                + ", ".join(_fmt(p, f["compile_estimate"][p]) for p in PHASES)
                + "."
            )
            logged = f.get("compile_log")
            if logged:
                fns = list(logged["functions"].items())[:6]
                ln.append(
                    f"  JAX_LOG_COMPILES: {logged['compilations']} XLA compilations, "
                    f"{logged['total_s']:.1f} s (trace {logged['trace_s']:.1f} + lower "
                    f"{logged['lower_s']:.1f} + compile {logged['compile_s']:.1f}); most: "
                    + ", ".join(f"{n} {v['seconds']:.1f} s x{v['compilations']}" for n, v in fns)
                    + "."
                )
        else:
            ln.append(
                f"{_label(i, f)}: torch {f['versions']['torch']}, {f['threads']} threads; "
                f"same arrays (hash): {f['same_arrays']}; same initial pools: "
                f"{f['same_initial_pools']}; per-seed process wall (s): "
                + ", ".join(f"{w:.1f}" for w in f["wall_per_seed_s"])
                + "; imports (s): "
                + ", ".join(f"{w:.1f}" for w in f["import_s"])
                + "."
            )
            if f.get("extrapolated"):
                ln.append(f"  extrapolated figures: {f['extrapolated']['note']}.")
    ln.append(
        "Phase seconds are wall time summed over rounds, strategies and seeds; jaxal's "
        "include round-0 compilation; 'other' = process wall - phases."
    )
    return "\n".join(ln)


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def _fmt(name: str, v) -> str:
    return f"{name} " + ("n/a" if v is None else f"{v:.1f}")


def _parse_value(text: str):
    """``--set`` values: int, float, True/False/None, else the string."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


def _peers_python(given: str | None) -> str | None:
    for p in (given, os.environ.get("JAXAL_PEERS_PYTHON"), *PEER_PYTHONS):
        if p and os.path.exists(p):
            return p
    return None


def _machine() -> dict:
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return dict(cpu=cpu, cores=os.cpu_count(), load_before=_load())


def _commit(jaxal_file: str) -> str:
    """HEAD, noting uncommitted changes under jaxal/ when the run used this tree's jaxal."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "jaxal"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        ours = Path(jaxal_file).resolve().is_relative_to(REPO)
        if not ours:
            return f"repo HEAD {head}; jaxal imported from outside this checkout"
        return f"repo HEAD {head}" + (" + uncommitted changes under jaxal/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "?"


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _load() -> str:
    return " / ".join(f"{v:.2f}" for v in os.getloadavg())


def _config_flag(k: str, v) -> str:
    return f"--config.{k}={v}"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--protocol", choices=tuple(PROTOCOLS), default="mnist_bald")
    ap.add_argument("--impls", default="jaxal,baal,torch")
    ap.add_argument("--seeds", type=int, default=None, help="jaxal's seeds (default 8; smoke 2)")
    ap.add_argument(
        "--peer_seeds", type=int, default=None, help="seeds the peers run (default --seeds)"
    )
    ap.add_argument("--torch_threads", type=int, default=2)
    ap.add_argument("--torch_mc", choices=("full", "head"), default="full")
    ap.add_argument("--torch_init", choices=("flax", "torch"), default="flax")
    ap.add_argument("--strategies", default=None, help="default: the protocol's")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="budget 40, 2 epochs, T = 4, 2 seeds: checks the whole pipeline",
    )
    ap.add_argument("--peers_python", "--peers-python", default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override for every implementation (jaxal's --config.KEY=VALUE and the "
        "exported protocol), e.g. --set budget=100 --set train.epochs=20; repeatable",
    )
    ap.add_argument(
        "--no_log_compiles",
        action="store_true",
        help="do not set JAX_LOG_COMPILES=1 for the jaxal run (its compile times are then "
        "only estimated from round 0)",
    )
    ap.add_argument("--jaxal_args", default="", help="extra flags for the jaxal CLI")
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the other implementations' figures from an existing --out of the "
        "same protocol, seeds and options (to run the implementations one at a time)",
    )
    ap.add_argument("--timeout", type=float, default=None, help="seconds per child process")
    ap.add_argument("--_prepare", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._prepare:
        config_path, overrides, out_npz, out_spec = args._prepare
        prepare(config_path, json.loads(overrides), out_npz, out_spec)
        return

    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    bad = [i for i in impls if i not in IMPLS]
    if bad:
        raise SystemExit(f"--impls: unknown {bad}; choose from {','.join(IMPLS)}")
    seeds = args.seeds or (SMOKE_SEEDS if args.smoke else 8)
    peer_seeds = min(args.peer_seeds or seeds, seeds)
    proto = PROTOCOLS[args.protocol]
    strategies = args.strategies or proto["strategies"]
    sets = {}
    for item in args.set:
        if "=" not in item:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        sets[k.removeprefix("config.")] = _parse_value(v)
    tag = args.protocol + ("_smoke" if args.smoke else "") + ("_set" if sets else "")
    workdir = Path(args.workdir or REPO / "runs" / "benchmarks" / f"experiment_{tag}").resolve()
    out_path = Path(args.out or REPO / "runs" / "benchmarks" / f"experiment_{tag}.json").resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    peers_python = _peers_python(args.peers_python)
    if any(i in PEERS for i in impls) and not peers_python:
        raise SystemExit("no peer venv python: pass --peers_python (see benchmarks/README.md)")

    overrides = {"num_seeds": seeds, "strategy": strategies, **(SMOKE if args.smoke else {})}
    overrides.update(sets)
    machine = _machine()
    data_npz, spec_json = workdir / "data.npz", workdir / "spec.json"
    print(f"[experiment] {tag}: exporting data and initial pools ...", flush=True)
    res = run_child(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--_prepare",
            str(REPO / proto["config"]),
            json.dumps(overrides),
            str(data_npz),
            str(spec_json),
        ],
        dict(os.environ),
        workdir / "logs" / "prepare.log",
        None,
    )
    if res["rc"]:
        _fail("export", res, workdir / "logs" / "prepare.log")
    spec = json.loads(spec_json.read_text())
    with np.load(data_npz) as f:
        spec["_initial"] = f["initial"].tolist()
    spec.update(torch_init=args.torch_init)
    spec_json.write_text(json.dumps(spec, indent=1))

    figs: dict[str, dict] = {}
    # what must match for --merge; the peers' seed counts may differ (each
    # implementation's figures carry its own seeds_measured and extrapolation)
    same = (
        "protocol",
        "smoke",
        "sets",
        "seeds",
        "torch_threads",
        "torch_mc",
        "torch_init",
    )
    mine = dict(
        protocol=args.protocol,
        smoke=args.smoke,
        sets=sets,
        seeds=seeds,
        peer_seeds=peer_seeds,
        torch_threads=args.torch_threads,
        torch_mc=args.torch_mc,
        torch_init=args.torch_init,
    )
    if args.merge and out_path.exists():
        old = json.loads(out_path.read_text())
        same_strategies = old["spec"]["strategies"] == spec["strategies"]
        if (
            all(old.get(k, {} if k == "sets" else None) == mine[k] for k in same)
            and same_strategies
        ):
            figs = {i: f for i, f in old["impls"].items() if i not in impls}
            print(f"[experiment] --merge: keeping {', '.join(figs) or 'nothing'} from {out_path}")
        else:
            print(f"[experiment] --merge: {out_path} has other options; not merged")
    for impl in impls:
        when = dict(date=_now(), load_before=_load())
        if impl == "jaxal":
            jw = workdir / "jaxal"
            cmd = [sys.executable, "-m", "jaxal", f"--config={REPO / proto['config']}"]
            cmd += [_config_flag(k, v) for k, v in overrides.items()]
            cmd += [f"--workdir={jw}", "--overwrite", "--no_progress"]
            cmd += shlex.split(args.jaxal_args)
            print(f"[experiment] jaxal: {shlex.join(cmd)}", flush=True)
            log = workdir / "logs" / "jaxal.log"
            env = dict(os.environ)
            if not args.no_log_compiles:
                env["JAX_LOG_COMPILES"] = "1"
            res = run_child(cmd, env, log, args.timeout)
            if res["rc"]:
                _fail("jaxal", res, log)
            figs["jaxal"] = jaxal_figures(jw, spec, res)
            figs["jaxal"]["command"] = shlex.join(cmd)
            print(
                f"[experiment] jaxal: {res['wall_s']:.1f} s, peak {res['peak_rss_mb']:.0f} MB",
                flush=True,
            )
        else:
            env = dict(os.environ, **{v: str(args.torch_threads) for v in THREAD_VARS})
            env.pop("PYTHONPATH", None)
            results, procs = [], []
            for seed in spec["seeds"][:peer_seeds]:
                cmd = [
                    peers_python,
                    str(WORKER),
                    "--impl",
                    impl,
                    "--data",
                    str(data_npz),
                    "--spec",
                    str(spec_json),
                    "--seed",
                    str(seed),
                    "--threads",
                    str(args.torch_threads),
                    "--mc",
                    args.torch_mc,
                ]
                log = workdir / "logs" / f"{impl}_seed{seed}.log"
                res = run_child(cmd, env, log, args.timeout)
                if res["rc"]:
                    _fail(f"{impl} seed {seed}", res, log)
                results.append(_result_line(res["output"]))
                procs.append({k: v for k, v in res.items() if k != "output"})
                print(
                    f"[experiment] {impl} seed {seed}: {res['wall_s']:.1f} s, "
                    f"peak {res['peak_rss_mb']:.0f} MB",
                    flush=True,
                )
            figs[impl] = peer_figures(results, procs, spec, seeds)
            figs[impl]["command"] = shlex.join(cmd)
        figs[impl].update(when, load_after=_load())

    machine["load_after"] = _load()
    figs = {i: figs[i] for i in IMPLS if i in figs}
    out = dict(
        **mine,
        machine=machine,
        commit=_commit(spec["jaxal_file"]),
        date=_now(),
        command=shlex.join([sys.executable, *sys.argv]),
        spec={k: v for k, v in spec.items() if k != "_initial"},
        initial_pools=spec["_initial"],
        impls=figs,
    )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=1))
    print()
    print(tables(out))
    print()
    print(notes(out))
    print(f"\n[experiment] figures in {out_path}")


if __name__ == "__main__":
    main()
