"""The device mesh of a run and who owns which seeds: policy and bookkeeping.

A :class:`Placement` holds a ``jax.sharding`` mesh with axes ``("seed",
"data")`` (``AxisType.Auto``). The ``seed`` axis gets ``gcd(S, devices)``
devices so seeds split evenly; the devices left form ``data``, over which pool
scoring is split. Across hosts the same mesh spans every process's devices
(``jax.distributed.initialize`` first, :func:`initialize_distributed`).
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

# Models whose vmapped training is slower than a loop on XLA:CPU.
_CONV_MODELS = ("cnn", "resnet18", "resnet34", "vgg11", "vgg16")


def resolve_seed_execution(mode: str, model_name: str, platform: str | None = None) -> str:
    """``vmap`` or ``loop`` for ``mode`` in ``("auto", "vmap", "loop")``.

    ``auto`` (from ``benchmarks/seeds.py``, README there): on XLA:CPU ``loop`` —
    vmapped convs become grouped convs, 5x slower per round for the small CNN,
    and for the MLP the two are within ~10% per round while ``loop`` compiles
    less (lower whole-run wall time at every S >= 2 measured); on GPU/TPU
    ``vmap``, one program over all seeds.
    """
    del model_name  # kept: the measured pick may come to depend on the model
    if mode != "auto":
        return mode
    platform = platform or jax.default_backend()
    return "loop" if platform == "cpu" else "vmap"


def resolve_step_loop(mode: str, model_name: str, platform: str | None = None) -> str:
    """Where a round's training step loop runs: ``device`` or ``host``.

    ``device``: all epochs inside one jitted ``lax.while_loop`` (no per-step
    dispatch; best for MLPs everywhere and for every model on GPU/TPU).
    ``host``: a Python loop of jitted steps: on XLA:CPU conv gradients inside a
    loop primitive run ~30x slower, so ``auto`` picks it for conv nets on CPU.
    """
    if mode != "auto":
        return mode
    platform = platform or jax.default_backend()
    return "host" if platform == "cpu" and model_name in _CONV_MODELS else "device"


class Placement(NamedTuple):
    """Where the seeds of a run live, and how many run at once under ``loop``.

    ``mesh`` is ``None`` on one device. ``threads``: host threads that run the
    per-seed calls of ``seed_execution=loop`` concurrently (1 = one after
    another). Seeds are independent, so results do not depend on it.
    """

    mesh: Mesh | None
    threads: int = 1

    @property
    def seed_devices(self) -> int:
        return 1 if self.mesh is None else self.mesh.shape["seed"]


SINGLE_DEVICE = Placement(None)


def cpu_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_seed_threads(
    threads: int, num_seeds: int, seed_devices: int = 1, platform: str | None = None
) -> int:
    """Host threads for ``seed_execution=loop`` (``threads`` 0 = auto).

    ``auto`` on XLA:CPU: one per core. A small conv net's training step leaves
    cores idle (Python dispatch, host syncs, ops XLA runs on one thread), so two
    seeds side by side on 2 cores train 1.75x faster than one after another
    (``benchmarks/seeds.py``). Elsewhere one per seed device, so that every
    device's seed group advances at once. Never more than the seeds.
    """
    if threads <= 0:
        platform = platform or jax.default_backend()
        threads = cpu_cores() if platform == "cpu" else seed_devices
    return max(1, min(int(threads), int(num_seeds)))


def make_placement(num_seeds: int, num_devices: int = 0, threads: int = 1) -> Placement:
    """A ``("seed", "data")`` mesh for ``num_seeds`` seeds.

    Args:
      num_seeds: S.
      num_devices: devices to use (0 = all of ``jax.devices()``, every process's).
      threads: host threads for ``seed_execution=loop`` (0 = auto, see
        :func:`resolve_seed_threads`).

    Raises:
      ValueError: more devices asked for than are visible.
    """
    devices = jax.devices()
    d = len(devices) if num_devices in (0, None) else int(num_devices)
    if d > len(devices):
        raise ValueError(f"num_devices={d} but only {len(devices)} devices are visible")
    seed = math.gcd(num_seeds, d)
    threads = resolve_seed_threads(threads, num_seeds, seed)
    if d == 1:
        return Placement(None, threads)
    grid = np.asarray(devices[:d]).reshape(seed, d // seed)
    mesh = Mesh(grid, ("seed", "data"), axis_types=(AxisType.Auto, AxisType.Auto))
    return Placement(mesh, threads)


def local_seeds(placement: Placement, num_seeds: int) -> np.ndarray:
    """Indices of the seeds this process owns: those of the mesh rows (seed
    groups) whose first device is one of its own. All of them in one process."""
    if placement.mesh is None or jax.process_count() == 1:
        return np.arange(num_seeds)
    rows = placement.mesh.devices
    per_group = num_seeds // rows.shape[0]
    me = jax.process_index()
    return np.asarray(
        [
            g * per_group + j
            for g in range(rows.shape[0])
            if rows[g, 0].process_index == me
            for j in range(per_group)
        ],
        dtype=np.int64,
    )


def row_mesh(mesh: Mesh, g: int) -> Mesh:
    """Seed group ``g``'s row of the mesh: a ``(1, data)`` mesh, same axis names."""
    return Mesh(mesh.devices[g : g + 1], mesh.axis_names, axis_types=mesh.axis_types)


def local_rows(mesh: Mesh) -> list[int] | None:
    """The mesh rows (seed groups) whose devices are all in this process, or
    ``None`` when some local row also spans another process (then a per-seed
    call would need the other process in lockstep: not done under ``loop``)."""
    me = jax.process_index()
    out = []
    for g, row in enumerate(mesh.devices):
        owners = {d.process_index for d in row}
        if me in owners:
            if owners != {me}:
                return None
            out.append(g)
    return out


def initialize_distributed(
    coordinator: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """Join a multi-process run (``jax.distributed``); CPU uses gloo collectives.

    Arguments left ``None`` are detected by JAX from the cluster environment
    (SLURM, Open MPI, Kubernetes, ...). One process and no detection: no-op.
    """
    if num_processes == 1:
        return
    # Only the CPU backend reads this; asking for the backend here would start
    # it, which must not happen before jax.distributed.initialize.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id)
