"""Where a jaxal training step spends its time on XLA:CPU: a ``jax.profiler``
trace of the step ``benchmarks/train_step.py`` times, summed per HLO op
(issue 9: "the profile that shows what limits it").

The step is jaxal's own (``train.make_fit_parts(...).step``, jitted, Adam),
on random inputs. After a warm-up, ``--steps`` steps run under
``jax.profiler.trace(create_perfetto_trace=True)``; the trace's op events of
the step's HLO module are summed by instruction name and joined with the
compiled HLO (opcode, output shape, the computation a fusion calls), then
grouped:

* ``conv forward`` / ``conv input grad`` / ``conv filter grad``: convolutions
  (or fusions holding one) whose output is an activation of the forward pass /
  the gradient of an activation / the shape of a kernel;
* ``dot``: matmuls (dense layers), ``pool``: reduce-window and its gradient
  (select-and-scatter), ``other``: elementwise fusions, copies, the optimizer.

XLA:CPU emits no profiler event for some ops (on the 2-core CPU here: the
large convolutions it hands to Eigen; every HLO convolution is listed with
its traced time); "not traced" is the step's wall time without the profiler
minus the traced ops. The profiler slows the step itself (its wall time
under the trace is printed too), so read the shares, not the absolute
milliseconds, of the traced ops.

    .venv/bin/python benchmarks/profile_step.py                    # cnn, batch 64
    .venv/bin/python benchmarks/profile_step.py --workload resnet18 --steps 5
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_step import WORKLOADS, build_step, matmul_peak, time_steps  # noqa: E402

# "%name = f32[64,24,24,32]{3,2,1,0} opcode(...)" in the compiled HLO text
_INSTR = re.compile(
    r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(\S+?\[[^\]]*\])(?:\{[^}]*\})?\s+([\w\-]+)\("
)
_CALLS = re.compile(r"calls=%?([\w.\-]+)")
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_DIMS = re.compile(r"\[([^\]]*)\]")


def _dims(shape: str) -> tuple[int, ...]:
    m = _DIMS.search(shape)
    if not m or not m.group(1):
        return ()
    return tuple(int(d) for d in m.group(1).split(","))


def parse_hlo(text: str) -> dict[str, dict]:
    """Instruction name -> {opcode, shape, computation, calls} of a compiled module."""
    out, comp = {}, ""
    for line in text.splitlines():
        c = _COMPUTATION.match(line)
        if c and "=" not in line.split("{")[0]:
            comp = c.group(1)
            continue
        m = _INSTR.match(line)
        if m:
            name, shape, opcode = m.groups()
            calls = _CALLS.search(line)
            out[name] = dict(
                opcode=opcode,
                shape=_dims(shape),
                computation=comp,
                calls=calls.group(1) if calls else None,
                line=line.strip(),
            )
    return out


def _inner_ops(hlo: dict[str, dict], name: str) -> list[dict]:
    """The instructions a fusion (or call) runs, or the instruction itself."""
    ins = hlo.get(name)
    if ins is None:
        return []
    if ins["calls"]:
        inner = [i for i in hlo.values() if i["computation"] == ins["calls"]]
        return inner or [ins]
    return [ins]


def classify(hlo: dict[str, dict], name: str, kernels: set, activations: set) -> str:
    ops = _inner_ops(hlo, name)
    codes = {o["opcode"] for o in ops}
    if "convolution" in codes:
        conv = next(o for o in ops if o["opcode"] == "convolution")
        if sorted(conv["shape"]) in kernels:
            return "conv filter grad"
        if "transpose(" in conv["line"] or "rev(" in conv["line"]:
            return "conv input grad"
        return "conv forward" if conv["shape"] in activations else "conv input grad"
    if codes & {"dot", "custom-call"}:
        return "dot"
    if codes & {"reduce-window", "select-and-scatter"}:
        return "pool"
    return "other"


def trace_events(logdir: Path) -> list[dict]:
    files = sorted(logdir.rglob("*.trace.json.gz")) + sorted(logdir.rglob("perfetto_trace.json.gz"))
    if not files:
        raise SystemExit(f"no trace written under {logdir}")
    with gzip.open(files[-1], "rt") as f:
        data = json.load(f)
    events = data["traceEvents"] if isinstance(data, dict) else data
    return [e for e in events if e.get("ph") == "X" and "dur" in e]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=tuple(WORKLOADS), default="cnn")
    ap.add_argument("--conv", default="xla")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--top", type=int, default=15, help="ops listed one by one")
    ap.add_argument("--json", default=None, help="write every op's figures here")
    args = ap.parse_args()

    import jax
    import jax.numpy as jnp

    import jaxal  # noqa: F401  (before any JAX computation: its XLA:CPU settings)

    peak = matmul_peak()
    step, carry, sargs = build_step(args.workload, args.conv, args.batch)
    compiled = step.lower(carry, jnp.int32(0), *sargs).compile()
    hlo = parse_hlo(compiled.as_text())
    kernels = [sorted(v.shape) for v in jax.tree.leaves(carry) if getattr(v, "ndim", 0) == 4]
    x = sargs[3].x_pool
    batch = args.batch or WORKLOADS[args.workload][3]
    activations = {(batch, *x.shape[1:])}
    # forward activations: every 4-D shape the forward pass produces (batch-leading,
    # not a kernel); conv input grads have the same shapes, told apart by their
    # reversed / transposed kernel operand
    activations |= {
        i["shape"] for i in hlo.values() if len(i["shape"]) == 4 and i["shape"][0] == batch
    }

    for i in range(3):
        carry = step(carry, jnp.int32(i % 4), *sargs)
    jax.block_until_ready(carry)
    plain, carry = time_steps(step, carry, sargs, args.steps, repeats=3)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with jax.profiler.trace(tmp, create_perfetto_trace=True):
            for i in range(args.steps):
                carry = step(carry, jnp.int32(i % 4), *sargs)
            jax.block_until_ready(carry)
        wall = (time.perf_counter() - t0) / args.steps
        events = trace_events(Path(tmp))

    per_op: dict[str, float] = collections.defaultdict(float)
    for e in events:
        name = e.get("name", "")
        if name in hlo:
            per_op[name] += e["dur"] / 1e3 / args.steps  # ms per step
    if not per_op:
        raise SystemExit("the trace holds no op of the step's HLO module (format changed?)")
    rows = []
    for name, ms in per_op.items():
        rows.append(
            dict(
                op=name,
                group=classify(hlo, name, kernels, activations),
                ms=ms,
                shape=list(hlo[name]["shape"]),
                opcode=hlo[name]["opcode"],
            )
        )
    rows.sort(key=lambda r: -r["ms"])
    ops_ms = sum(r["ms"] for r in rows)
    # XLA:CPU launches its big (Eigen) convolutions without an event for their
    # work: list every convolution's traced time; the rest is in "not traced"
    convs = {n: per_op.get(n, 0.0) for n, i in hlo.items() if i["opcode"] == "convolution"}
    print(
        f"{args.workload} (batch {batch}, model.conv={args.conv}): {1e3 * plain:.1f} ms/step "
        f"(best of 3 x {args.steps} steps, no profiler); {1e3 * wall:.1f} ms/step under the "
        f"profiler; traced ops {ops_ms:.1f} ms/step; matmul peak {peak / 1e9:.0f} GFLOP/s; "
        f"{jax.devices()[0].device_kind}"
    )
    untraced = max(0.0, 1e3 * plain - ops_ms)
    print(
        "HLO convolutions (traced ms/step): "
        + ", ".join(
            f"{n} {list(hlo[n]['shape'])} {classify(hlo, n, kernels, activations)} {ms:.2f}"
            for n, ms in convs.items()
        )
    )
    groups: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
    for r in rows:
        groups[r["group"]][0] += r["ms"]
        groups[r["group"]][1] += 1
    groups["not traced (step without profiler - traced ops)"] = [untraced, 0]
    total = ops_ms + untraced
    print("\n| group | ms/step | share | ops |")
    print("|---|---:|---:|---:|")
    for name, (ms, n) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        print(f"| {name} | {ms:.2f} | {100 * ms / total:.0f}% | {n} |")
    print(f"\nTop {args.top} ops:\n")
    print("| op | opcode | group | output shape | ms/step |")
    print("|---|---|---|---|---:|")
    for r in rows[: args.top]:
        print(f"| {r['op']} | {r['opcode']} | {r['group']} | {r['shape']} | {r['ms']:.2f} |")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                dict(
                    step_ms=1e3 * plain,
                    profiled_ms=1e3 * wall,
                    untraced_ms=untraced,
                    peak_gflops=peak / 1e9,
                    ops=rows,
                ),
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
