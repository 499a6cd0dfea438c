"""Acquisition kernels: jaxal vs plain numpy vs the PyTorch peers (issue 3).

Workloads (inputs generated once with a fixed numpy seed into one ``.npz``
that every implementation loads):

1. entropy / margin / least confidence + top-k (N=50,000, C=10, k=1,000);
2. Core-Set k-center greedy (N=50,000, D=512, k=1,000, 1,000 labeled);
3. BADGE k-means++ seeding (N=50,000, D=512, C=10, k=1,000, 1,000 labeled);
4. BALD with MC dropout, BALD-paper CNN, 10,000 28x28 images, T=20
   (jaxal ``full`` and ``head`` modes vs baal).

Each implementation runs in its own process, ``benchmarks/peers/<impl>_run.py``
(jaxal and numpy with this interpreter, the peers with ``--peers-python``):
median of ``--repeats`` runs after a warm-up; jaxal's compile time is reported
separately; peak memory is ``ru_maxrss`` of the worker, as the rise above its
baseline after imports and data load (and compile) and as the absolute peak.
Thread counts are set the same for every process (``--threads``).

Run (from the repo root)::

  .venv/bin/python benchmarks/acquisition.py --peers-python=/work/peers-venv/venv/bin/python
  .venv/bin/python benchmarks/acquisition.py --quick          # < 1 min sanity check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

HERE = Path(__file__).resolve().parent

SIZES = {
    "full": dict(n=50_000, c=10, d=512, k=1_000, n_labeled=1_000, n_img=10_000, t=20, batch=100),
    "quick": dict(n=2_000, c=10, d=64, k=50, n_labeled=50, n_img=200, t=5, batch=100),
}
# (workload, implementation); peers need --peers-python.
JOBS = [
    ("uncertainty", "jaxal"),
    ("uncertainty", "numpy"),
    ("uncertainty", "distil"),
    ("uncertainty", "baal"),
    ("uncertainty", "skactiveml"),
    ("coreset", "jaxal"),
    ("coreset", "numpy"),
    ("coreset", "distil"),
    ("badge", "jaxal"),
    ("badge", "numpy"),
    ("badge", "distil"),
    ("bald", "jaxal"),
    ("bald", "baal"),
]
PEERS = ("distil", "baal", "skactiveml")


# Inputs ------------------------------------------------------------------------


def make_inputs(path: str, sizes: dict, seed: int = 0) -> None:
    """Writes every workload's inputs to ``path`` (fixed numpy seed)."""
    import jax  # only for the BADGE uniforms jaxal's select will draw from the key

    rng = np.random.default_rng(seed)
    n, c, d, k = sizes["n"], sizes["c"], sizes["d"], sizes["k"]
    # Probabilities with a spread of confidence: softmax of logits at per-point scales.
    logits = rng.standard_normal((n, c)) * rng.lognormal(0.5, 0.75, (n, 1))
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs = (probs / probs.sum(1, keepdims=True)).astype(np.float32)  # [N, C]
    # Penultimate-like embeddings: ReLU of class centres plus noise of varying scale.
    centres = rng.standard_normal((c, d))
    y = rng.integers(c, size=n)
    noise = rng.standard_normal((n, d)) * rng.uniform(0.5, 1.5, (n, 1))
    emb = np.maximum(centres[y] + noise, 0.0).astype(np.float32)  # [N, D]
    labeled = np.zeros(n, bool)
    labeled[rng.choice(n, sizes["n_labeled"], replace=False)] = True
    images = rng.random((sizes["n_img"], 28, 28, 1), dtype=np.float32)  # [n_img, 28, 28, 1]
    uniforms = np.asarray(jax.random.uniform(jax.random.key(seed), (k,)), np.float32)
    np.savez(
        path,
        probs=probs,
        emb=emb,
        labeled=labeled,
        images=images,
        uniforms=uniforms,
        seed=np.int64(seed),
        **{name: np.int64(v) for name, v in sizes.items()},
    )


# Orchestration -------------------------------------------------------------------


def child_env(threads: int) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONHASHSEED="0")
    env.update({var: str(threads) for var in common.THREAD_VARS})
    if threads == 1:
        env["XLA_FLAGS"] = (
            env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
            " intra_op_parallelism_threads=1"
        ).strip()
    return env


def run_job(workload: str, impl: str, path: str, args) -> dict:
    """Runs one (workload, implementation) in a fresh process; its parsed RESULT."""
    common_args = ["--workload", workload, "--data", path, "--repeats", str(args.repeats)]
    python = args.peers_python if impl in PEERS else sys.executable
    cmd = [python, str(HERE / "peers" / f"{impl}_run.py"), *common_args]
    cmd += ["--threads", str(args.threads)]
    if impl == "distil" and workload == "badge" and args.distil_badge_k:
        cmd += ["--k-small", str(args.distil_badge_k)]
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(args.threads))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        print(f"  {impl}/{workload} FAILED:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return {"error": proc.stderr[-500:]}
    out = json.loads(lines[-1][len("RESULT ") :])
    out["load"] = f"{load0:.2f} -> {os.getloadavg()[0]:.2f}"
    print(
        f"  {impl:10s} {workload:11s} done in {time.perf_counter() - t0:6.1f} s, "
        f"1-min load {out['load']}",
        flush=True,
    )
    return out


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# Report --------------------------------------------------------------------------

# (label, workload, jaxal run, peers, peer run); the peer run defaults to the jaxal run.
ROWS = [
    ("entropy + top-k", "uncertainty", "entropy", ("distil", "baal", "skactiveml"), None),
    ("margin + top-k", "uncertainty", "margin", ("distil", "baal", "skactiveml"), None),
    (
        "least confidence + top-k",
        "uncertainty",
        "least_confidence",
        ("distil", "baal", "skactiveml"),
        None,
    ),
    ("Core-Set k-center greedy", "coreset", "coreset", ("distil",), None),
    ("BADGE k-means++", "badge", "badge", ("distil",), None),
    ("BALD MC dropout, full", "bald", "full", ("baal",), "bald"),
    ("BALD MC dropout, head", "bald", "head", ("baal",), "bald"),
]
BOUND_S = 4.0  # issue 3: memory-bandwidth bound of k-center / BADGE at the full sizes


def _rec(results, workload, impl, run):
    return (results.get((workload, impl)) or {}).get("runs", {}).get(run)


def _ms(rec) -> str:
    return "n/a" if rec is None else f"{rec['median_s'] * 1e3:,.1f}"


def _ratio(num, den) -> str:
    return "n/a" if num is None or den is None else f"{num['median_s'] / den['median_s']:.1f}x"


def _target(workload, run, jx, peer, meta) -> tuple[str, str]:
    """(target text, PASS/MISS with the figure) for the issue's targets."""
    if jx is None or workload == "uncertainty":
        return "-", "-"
    if meta["size"] != "full":
        return "(full sizes only)", "-"
    checks = []
    if workload in ("coreset", "badge"):
        checks.append(
            (
                f"<= {1.3 * BOUND_S:.1f} s",
                jx["median_s"] <= 1.3 * BOUND_S,
                f"{jx['median_s']:.2f} s",
            )
        )
        if peer is not None:
            r = peer["median_s"] / jx["median_s"]
            checks.append((">= 10x DISTIL", r >= 10, f"{r:.1f}x"))
        if workload == "badge":
            r = jx["peak_delta_mb"] / jx["input_mb"]
            checks.append(("mem <= 2x inputs", r <= 2, f"{r:.2f}x"))
    if workload == "bald" and peer is not None:
        need = 2 if run == "full" else 10
        r = peer["median_s"] / jx["median_s"]
        checks.append((f">= {need}x baal", r >= need, f"{r:.1f}x"))
    text = "; ".join(c[0] for c in checks)
    verdict = "; ".join(("PASS" if ok else "MISS") + f" {fig}" for _, ok, fig in checks)
    return text, verdict


def _agreement(a, b) -> str:
    """Identical-order prefix and set overlap of two pick lists."""
    if a is None or b is None:
        return "n/a"
    pa, pb = a["picks"], b["picks"]
    n = min(len(pa), len(pb))
    prefix = next((i for i in range(n) if pa[i] != pb[i]), n)
    overlap = len(set(pa[:n]) & set(pb[:n])) / max(n, 1)
    return f"same order for {prefix}/{n}, set overlap {overlap:.1%}"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def render(results: dict, meta: dict) -> str:
    """The markdown report: the main table, targets, agreement and details."""
    out = [
        f"date: {meta['started']}; machine: {meta['cpus']}-core CPU ({_cpu_name()}); "
        f"threads: {meta['threads']} for every implementation (OMP/OPENBLAS/MKL vars, "
        f"torch.set_num_threads, XLA:CPU's own pool = all {meta['cpus']} cores); "
        f"load average (1/5/15 min) before {meta['load_before']}, after {meta['load_after']}; "
        f"median of {meta['repeats']} runs after a warm-up; sizes: {meta['sizes']}",
        "",
        "| workload | jaxal (ms) | compile (s) | jaxal peak MB (rise / abs) | numpy (ms) "
        "| peer (ms) | peer/jaxal | numpy/jaxal | target | result |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for label, workload, run, peers, peer_run in ROWS:
        jx = _rec(results, workload, "jaxal", run)
        npy = _rec(results, workload, "numpy", run)
        cands = [(p, _rec(results, workload, p, peer_run or run)) for p in peers]
        cands = [(p, r) for p, r in cands if r is not None]
        name, peer = min(cands, key=lambda c: c[1]["median_s"]) if cands else (None, None)
        peer_txt = "n/a" if peer is None else f"{_ms(peer)} ({name}"
        if peer is not None and peer.get("extrapolated"):
            peer_txt += f", extrapolated from k={peer['k_run']}"
        peer_txt += ")" if peer is not None else ""
        mem = "n/a" if jx is None else f"{jx['peak_delta_mb']:.0f} / {jx['peak_mb']:.0f}"
        comp = "n/a" if jx is None else f"{jx['compile_s']:.2f}"
        target, verdict = _target(workload, run, jx, peer, meta)
        out.append(
            f"| {label} | {_ms(jx)} | {comp} | {mem} | {_ms(npy)} | {peer_txt} "
            f"| {_ratio(peer, jx)} | {_ratio(npy, jx)} | {target} | {verdict} |"
        )
    out += ["", "Agreement of the selected indices with jaxal's:"]
    for label, workload, run, peers, peer_run in ROWS[:5]:
        jx = _rec(results, workload, "jaxal", run)
        for impl in ("numpy", *peers):
            other = _rec(results, workload, impl, peer_run or run)
            if other is not None:
                out.append(f"- {label} vs {impl}: {_agreement(jx, other)}")
    out += ["", "All figures (median ms; peak MB as rise over baseline / absolute):"]
    for (workload, impl), res in results.items():
        for run, rec in (res or {}).get("runs", {}).items():
            extra = {
                key: (round(v, 3) if isinstance(v, float) else v)
                for key, v in rec.items()
                if key
                not in (
                    "picks",
                    "runs_s",
                    "median_s",
                    "min_s",
                    "peak_mb",
                    "peak_delta_mb",
                    "baseline_mb",
                )
            }
            out.append(
                f"- {impl}/{workload}/{run}: {rec['median_s'] * 1e3:,.1f} ms "
                f"(min {rec.get('min_s', rec['median_s']) * 1e3:,.1f}), peak "
                f"{rec['peak_delta_mb']:.0f} / {rec['peak_mb']:.0f} MB, 1-min load {res['load']} "
                f"{extra or ''}"
            )
        if res and "error" in res:
            out.append(f"- {impl}/{workload}: FAILED")
    return "\n".join(out)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, < 1 min")
    ap.add_argument("--peers-python", default=None, help="python of the peer venv (torch etc.)")
    ap.add_argument("--threads", type=int, default=2, help="threads for every implementation")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs (default 3; quick 1)")
    ap.add_argument("--only", default=None, help="comma-separated workloads to run")
    ap.add_argument(
        "--distil-badge-k",
        type=int,
        default=None,
        help="k for DISTIL's BADGE, extrapolated linearly to k (default 50 full, all of k quick)",
    )
    ap.add_argument("--json", default=None, help="write all raw results here")
    ap.add_argument("--make-inputs", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    size = "quick" if args.quick else "full"
    sizes = SIZES[size]
    if args.make_inputs:
        make_inputs(args.make_inputs, sizes)
        return
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.distil_badge_k is None and not args.quick:
        args.distil_badge_k = 50
    only = set(args.only.split(",")) if args.only else None
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    load_before = loadavg()
    print(f"acquisition benchmark ({size}), {started}, load {load_before}", flush=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "inputs.npz")
        # In a child process: a worker's ru_maxrss starts at its parent's peak (Linux
        # keeps the pre-exec high-water mark), so this process must stay small.
        cmd = [sys.executable, __file__, "--make-inputs", path] + ["--quick"] * args.quick
        subprocess.run(cmd, check=True, env=child_env(args.threads))
        for workload, impl in JOBS:
            if only and workload not in only:
                continue
            if impl in PEERS and not args.peers_python:
                continue
            results[(workload, impl)] = run_job(workload, impl, path, args)
    meta = dict(
        size=size,
        sizes=sizes,
        started=started,
        threads=args.threads,
        repeats=args.repeats,
        load_before=load_before,
        load_after=loadavg(),
        cpus=os.cpu_count(),
        distil_badge_k=args.distil_badge_k,
        peers=bool(args.peers_python),
    )
    print(render(results, meta))
    if args.json:
        raw = {f"{w}/{i}": r for (w, i), r in results.items()}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": raw}, indent=1))


if __name__ == "__main__":
    main()
