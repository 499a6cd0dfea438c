"""Seeds as an array axis: wall time of a small AL run for S seeds, per execution path.

For each model (MLP on digits, the small CNN on mnist5k) and S in --seeds, runs
the same small active-learning experiment (entropy sampling, 4 rounds) in a
fresh process per path:

* ``vmap``:    one process, one jitted program over all S seeds;
* ``loop``:    one process, one jitted per-seed program called S times;
* ``sharded``: one process, vmap with the seeds sharded over 4 fake CPU devices
               (``--xla_force_host_platform_device_count=4``);
* ``procs``:   S separate single-seed processes run one after another (the way
               PyTorch peers run seeds), total wall time.

Reports the process wall time (start-up + compile + run) and the steady-state
time of one round (median over rounds >= 1 of fit + evaluate + score + select),
and ratios against the single-seed process. Also prints what ``auto`` picks.

    python benchmarks/seeds.py                      # full table (~10-20 min on 2 cores)
    python benchmarks/seeds.py --quick              # S in {1, 4}, MLP only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKLOADS = {
    # model: config overrides of a small run (entropy, 4 rounds)
    "mlp": {
        "dataset.name": "mnist5k",
        "model.name": "mlp",
        "model.hidden": (256,),
        "model.dropout": 0.0,
        "train.epochs": 50,
        "train.batch_size": 32,
        "initial.size": 20,
        "query_size": 20,
        "budget": 80,
    },
    "cnn": {
        "dataset.name": "mnist5k",
        "model.name": "cnn",
        "train.epochs": 10,
        "train.batch_size": 32,
        "initial.size": 20,
        "query_size": 20,
        "budget": 80,
    },
}


def _config(model: str, num_seeds: int, mode: str, devices: int):
    from jaxal.config import apply_overrides, base_config

    c = base_config()
    c.strategy = "entropy"
    c.initial.strategy = "random"
    c.num_seeds = num_seeds
    c.seed_execution = mode
    c.num_devices = devices
    c.checkpoint.enabled = False
    return apply_overrides(c, WORKLOADS[model])


def worker(model: str, num_seeds: int, mode: str, devices: int, seed: int) -> dict:
    """One run in this process; returns timings (printed as JSON by main)."""
    import numpy as np

    from jaxal import config as config_lib
    from jaxal import data as data_lib
    from jaxal import parallel, strategies
    from jaxal.experiment import to_device
    from jaxal.loop import make_engine, run_rounds

    t0 = time.perf_counter()
    config = _config(model, num_seeds, mode, devices)
    config.seed = seed
    config_lib.validate(config)
    ds = data_lib.load(config.dataset)
    n_cls = ds.num_classes
    placement = parallel.make_placement(num_seeds, devices)
    net = config_lib.build_model(config, n_cls)
    budget = config_lib.budget(config, n_cls)
    engine = make_engine(
        config,
        net,
        strategies.get("entropy"),
        ds.x_train.shape[0],
        n_cls,
        budget,
        placement=placement,
    )
    data = parallel.put_shared(to_device(ds), placement)
    _, recs = run_rounds(
        engine,
        np.arange(seed, seed + num_seeds),
        data,
        init_size=config_lib.initial_size(config, n_cls),
        query_size=int(config.query_size),
        budget=budget,
    )
    rounds = [r.train_seconds + r.eval_seconds + r.score_seconds + r.select_seconds for r in recs]
    return {
        "run_seconds": time.perf_counter() - t0,
        "round_seconds": float(np.median(rounds[1:])),
        "seed_execution": engine.seed_execution,
        "accuracy": float(np.mean(recs[-1].test_accuracy)),
    }


def _spawn(model, s, mode, devices=1, seed=0) -> dict:
    env = dict(os.environ)
    if devices > 1:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    cmd = [sys.executable, __file__, "--worker", model, str(s), mode, str(devices), str(seed)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["process_seconds"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--seeds", default="1,2,4,8,16")
    ap.add_argument("--procs-seeds", default="8", help="S for the separate-processes column")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        model, s, mode, devices, seed = args.worker
        print(json.dumps(worker(model, int(s), mode, int(devices), int(seed))))
        return
    if args.quick:
        args.models, args.seeds, args.procs_seeds = "mlp", "1,4", "4"
    from jaxal.parallel import resolve_seed_execution, resolve_step_loop

    print(f"# load average at start: {os.getloadavg()}")
    for model in args.models.split(","):
        auto = resolve_seed_execution("auto", model, "cpu")
        print(
            f"\n## {model}: auto -> seed_execution={auto}, "
            f"step_loop={resolve_step_loop('auto', model, 'cpu')}"
        )
        base = _spawn(model, 1, "vmap")
        print(
            "| S | path | process s | round s | process / (S x 1-seed process) "
            "| round / 1-seed round |"
        )
        print("|---|---|---|---|---|---|")
        print(
            f"| 1 | one process | {base['process_seconds']:.1f} | {base['round_seconds']:.3f} "
            "| 1.00 | 1.00 |"
        )
        slow: dict[str, str] = {}  # paths already > 3x slower than the fastest: not rerun
        for s in [int(x) for x in args.seeds.split(",") if int(x) > 1]:
            best, times = None, {}
            for mode, devices in (("vmap", 1), ("loop", 1), ("sharded", 4)):
                if mode in slow:
                    print(f"| {s} | {mode} | skipped: {slow[mode]} | | | |", flush=True)
                    continue
                r = _spawn(model, s, "vmap" if mode == "sharded" else mode, devices)
                ratio = r["process_seconds"] / (s * base["process_seconds"])
                per_round = r["round_seconds"] / base["round_seconds"]
                print(
                    f"| {s} | {mode} | {r['process_seconds']:.1f} | {r['round_seconds']:.3f} "
                    f"| {ratio:.2f} | {per_round:.2f} |",
                    flush=True,
                )
                times[mode] = r["round_seconds"]
                if mode != "sharded" and (best is None or r["round_seconds"] < best[1]):
                    best = (mode, r["round_seconds"])
            for mode, t in times.items():
                if t > 3 * best[1] and mode not in slow:
                    slow[mode] = f"{t / best[1]:.1f}x slower than {best[0]} per round at S={s}"
            print(
                f"|   | fastest single-device path at S={s}: **{best[0]}** "
                f"(auto picks {auto}: {'match' if best[0] == auto else 'MISMATCH'}) | | | | |"
            )
            if str(s) in args.procs_seeds.split(","):
                t = sum(_spawn(model, 1, "vmap", seed=i)["process_seconds"] for i in range(s))
                print(
                    f"| {s} | {s} separate processes | {t:.1f} | | "
                    f"{t / (s * base['process_seconds']):.2f} | |",
                    flush=True,
                )
    print(f"\n# load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
