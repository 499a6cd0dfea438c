"""How the seed axis executes, and on which devices: all mesh code lives here.

Every per-seed function of the loop is written for ONE seed. :func:`over_seeds`
turns it into a function of ``[S]``-stacked state, either

* ``vmap``: one jitted program over all seeds (best on GPU/TPU and for MLPs), or
* ``loop``: one jitted per-seed program called S times (measured faster on
  XLA:CPU for conv nets, where vmapped convolutions become slow grouped convs).

Both run the same per-seed function with the same derived keys, so they give
the same labeled pools; ``auto`` picks by platform and model, from the
measurements in ``benchmarks/README.md``.

Devices. A :class:`Placement` holds a ``jax.sharding`` mesh with axes
``("seed", "data")`` (``AxisType.Auto``). Stacked per-seed state is sharded
over ``seed``; the dataset is replicated. Under ``vmap`` the jitted program is
partitioned by GSPMD from those input shardings; under ``loop`` each seed's
call runs on the device that holds its shard, ``Placement.threads`` seeds at a
time, so seed groups run side by side — the pmap-style "one seed group per
device" execution, done with ``jit`` + shardings instead of the
maintenance-mode ``jax.pmap``. Pool scoring also uses the ``data`` axis (the
devices left when there are fewer seeds than devices): see
:func:`shard_pool_rows`. Across hosts the same mesh spans every process's
devices (``jax.distributed.initialize`` first).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

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


# Placement ------------------------------------------------------------------


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

    The ``seed`` axis gets ``gcd(S, D)`` devices so seeds split evenly; the rest
    of the devices form the ``data`` axis.
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


def map_seeds(fn: Callable, n: int, threads: int) -> list:
    """``[fn(0), ..., fn(n - 1)]``, run in ``threads`` host threads.

    JAX dispatch is thread-safe and each call is one seed's own computation,
    so the results are those of the sequential loop.
    """
    if threads <= 1 or n <= 1:
        return [fn(i) for i in range(n)]
    with ThreadPoolExecutor(min(threads, n)) as pool:
        return list(pool.map(fn, range(n)))


class SeedRunner:
    """Runs the first call of a per-seed loop with one thread (it compiles:
    threads would race to compile the same program), later calls threaded."""

    def __init__(self, threads: int):
        self.threads, self.warm = threads, False

    def __call__(self, fn: Callable, n: int) -> list:
        out = map_seeds(fn, n, self.threads if self.warm else 1)
        self.warm = True
        return out


def _place(tree, sharding):
    """Put every leaf under ``sharding``; works across processes (each process
    passes the same host values and materialises only its own shards)."""

    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            return a if a.sharding == sharding else jax.jit(lambda x: x, out_shardings=sharding)(a)
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(lambda a: _map_keys(one, a), tree)


def put_seeds(tree, placement: Placement):
    """Shard a stacked ``[S, ...]`` pytree over the mesh's ``seed`` axis."""
    if placement.mesh is None:
        return tree
    return _place(tree, NamedSharding(placement.mesh, P("seed")))


def put_shared(tree, placement: Placement):
    """Replicate a pytree (e.g. the dataset) on every device of the mesh."""
    if placement.mesh is None:
        return tree
    return _place(tree, NamedSharding(placement.mesh, P()))


def to_host(tree):
    """Host numpy copies of (possibly multi-process, sharded) arrays: every
    process gets the full values (an all-gather across processes if needed)."""

    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree.map(one, tree)


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


def tree_index(tree, i: int):
    return jax.tree.map(lambda a: a[i], tree)


def tree_stack(trees: Sequence):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def split_seeds(tree, placement: Placement) -> list:
    """Per-seed slices of a seed-sharded stacked pytree, each on its own device."""
    if placement.mesh is None:
        leaves, treedef = jax.tree.flatten(tree)
        s = leaves[0].shape[0] if leaves else 0
        return [tree_index(tree, i) for i in range(s)]

    def per_seed(a):
        # One copy per seed group this process holds: its first local device's.
        # (A group whose row spans processes is run by each of them, alike.)
        out, seen = [], set()
        for shard in sorted(a.addressable_shards, key=lambda sh: sh.index[0].start or 0):
            start = shard.index[0].start or 0
            if start not in seen:
                seen.add(start)
                out.extend(shard.data[j] for j in range(shard.data.shape[0]))
        return out

    leaves, treedef = jax.tree.flatten(tree)
    columns = [per_seed(a) for a in leaves]
    return [jax.tree.unflatten(treedef, list(col)) for col in zip(*columns, strict=True)]


def stack_seeds(trees: Sequence, placement: Placement):
    """Inverse of :func:`split_seeds`: one seed-sharded stacked pytree."""
    if placement.mesh is None:
        return tree_stack(trees)
    sharding = NamedSharding(placement.mesh, P("seed"))
    # `trees` are this process's seeds only (all of them in one process):
    # local seed groups in ascending order, `per_group` seeds each.
    me = jax.process_index()
    local_rows = [
        i for i, row in enumerate(placement.mesh.devices) if any(d.process_index == me for d in row)
    ]
    per_group = len(trees) // len(local_rows)
    num_seeds = per_group * placement.seed_devices

    def stack(*xs):
        shape = (num_seeds,) + xs[0].shape
        arrays = []
        for dev, idx in sharding.addressable_devices_indices_map(shape).items():
            start = local_rows.index((idx[0].start or 0) // per_group) * per_group
            group = [local_copy(x, dev) for x in xs[start : start + per_group]]
            arrays.append(jax.device_put(jnp.stack(group), dev))
        return jax.make_array_from_single_device_arrays(shape, sharding, arrays)

    return jax.tree.map(stack, *trees)


def local_copy(tree, device):
    """``tree`` on ``device``: the shard a replicated array already holds there,
    else a copy (e.g. an uncommitted scalar)."""

    def one(a):
        if not isinstance(a, jax.Array):
            return a
        for shard in a.addressable_shards:
            if shard.device == device:
                return shard.data
        return jax.device_put(a, device)

    return jax.tree.map(one, tree)


def shard_pool_rows(x: jax.Array) -> jax.Array:
    """Split ``x``'s leading (pool-row) axis over the ``data`` axis of the mesh
    in context (set by :func:`over_seeds` for functions built with
    ``shard_data=True``); unchanged without one. Call inside jitted code.

    Results do not depend on it: it only decides which device computes which
    rows (random bits are partitionable threefry, identical however split).
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or "data" not in mesh.axis_names or mesh.shape["data"] == 1:
        return x
    return jax.lax.with_sharding_constraint(x, P("data"))


def over_seeds(
    fn: Callable,
    mode: str,
    in_axes: tuple,
    placement: Placement = SINGLE_DEVICE,
    shard_data: bool = False,
) -> Callable:
    """Run per-seed ``fn`` over a leading seed axis of the arguments marked 0.

    Args:
      fn: a pure per-seed function.
      mode: ``"vmap"`` or ``"loop"``.
      in_axes: per positional argument, ``0`` (stacked over seeds, sharded over
        ``seed``) or ``None`` (shared by all seeds, e.g. the dataset: replicated).
      placement: the devices; arguments must already be placed
        (:func:`put_seeds`, :func:`put_shared`).
      shard_data: ``fn`` splits its work over the mesh's ``data`` axis with
        :func:`shard_pool_rows` (pool scoring). Under ``vmap`` the program runs
        on the whole mesh; under ``loop`` each seed's call runs on its seed
        group's row of the mesh (seed-group devices x ``data``) instead of one
        device, when that row lies in this process.

    Returns:
      A function of the stacked arguments returning stacked outputs, sharded
      like the inputs.
    """
    mesh = placement.mesh
    if mode == "vmap":
        if mesh is None:
            return jax.jit(jax.vmap(fn, in_axes=in_axes))
        jitted = jax.jit(jax.vmap(fn, in_axes=in_axes, spmd_axis_name="seed"))

        def vmapped(*args):
            with jax.set_mesh(mesh):
                return jitted(*args)

        vmapped.jitted = jitted
        vmapped.lower = lambda *args: _lower_in(mesh, jitted, args)
        return vmapped
    if mode != "loop":
        raise ValueError(f"seed execution {mode!r}; allowed: vmap, loop")
    jitted = jax.jit(fn)
    run = SeedRunner(placement.threads)
    # Seed groups whose calls run on their whole mesh row (None: one device each).
    groups = None
    if shard_data and mesh is not None and mesh.shape["data"] > 1:
        groups = _local_rows(mesh)
    row_jits: dict[int, tuple[Mesh, Callable]] = {}

    def row_jit(g: int):
        if g not in row_jits:
            row_mesh = _row_mesh(mesh, g)
            out = NamedSharding(row_mesh, P())  # each device of the row gets the result
            row_jits[g] = (row_mesh, jax.jit(fn, out_shardings=out))
        return row_jits[g]

    def calls(args) -> list[tuple]:
        """Per local seed: ``(row mesh or None, jitted function, arguments)``."""
        if groups is not None:
            per_seed = [
                split_seeds_over_rows(a, placement) if ax == 0 else None
                for a, ax in zip(args, in_axes, strict=True)
            ]
            s = _num_local(per_seed, in_axes)
            per_group = s // len(groups)

            def make(i):
                row_mesh, fn_row = row_jit(groups[i // per_group])
                call = [
                    (p[i] if p else a) if ax == 0 else to_row(a, row_mesh)
                    for a, ax, p in zip(args, in_axes, per_seed, strict=True)
                ]
                return row_mesh, fn_row, call

            return [make(i) for i in range(s)]
        per_seed = [
            split_seeds(a, placement) if ax == 0 else None
            for a, ax in zip(args, in_axes, strict=True)
        ]
        out = []
        for i in range(_num_local(per_seed, in_axes)):
            call = []
            for a, ax, p in zip(args, in_axes, per_seed, strict=True):
                if ax == 0:
                    call.append(p[i] if p else a)
                elif mesh is not None:
                    dev = per_seed_device(per_seed, in_axes, i)
                    call.append(local_copy(a, dev) if dev is not None else a)
                else:
                    call.append(a)
            out.append((None, jitted, call))
        return out

    def one(c):
        row_mesh, f, call = c
        if row_mesh is None:
            return f(*call)
        with jax.set_mesh(row_mesh):
            return f(*call)

    def looped(*args):
        cs = calls(args)
        # Concurrent calls must not share devices when they are multi-device
        # programs (two threads could enqueue them on the devices in opposite
        # orders and deadlock their collectives): a row's seeds run in order,
        # rows side by side. One-device calls run side by side freely.
        lanes: dict = {}
        for i, (row_mesh, _, _) in enumerate(cs):
            lane_key = ("seed", i) if row_mesh is None else ("row", id(row_mesh))
            lanes.setdefault(lane_key, []).append(i)
        lanes = list(lanes.values())
        outs: list = [None] * len(cs)

        def lane(j):
            for i in lanes[j]:
                outs[i] = one(cs[i])

        run(lane, len(lanes))
        return stack_seeds(outs, placement)

    def lower_first(*args):
        row_mesh, f, call = calls(args)[0]
        return _lower_in(row_mesh, f, call)

    looped.jitted = jitted  # for compile-count checks
    looped.lower = lower_first
    return looped


def _lower_in(mesh, jitted, args):
    """``jitted.lower(*args)`` with ``mesh`` in context (as when it is called)."""
    if mesh is None:
        return jitted.lower(*args)
    with jax.set_mesh(mesh):
        return jitted.lower(*args)


def _num_local(per_seed: list, in_axes: tuple) -> int:
    # Empty pytrees (e.g. a None argument) split into [] and pass through.
    (s,) = {len(p) for p, ax in zip(per_seed, in_axes, strict=True) if ax == 0 and p}
    return s


def _row_mesh(mesh: Mesh, g: int) -> Mesh:
    """Seed group ``g``'s row of the mesh: a ``(1, data)`` mesh, same axis names."""
    return Mesh(mesh.devices[g : g + 1], mesh.axis_names, axis_types=mesh.axis_types)


def _local_rows(mesh: Mesh) -> list[int] | None:
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


def _map_keys(one: Callable, a):
    """Apply an array function to ``a``, through key_data for typed PRNG keys."""
    if isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        return jax.random.wrap_key_data(one(jax.random.key_data(a)), impl=jax.random.key_impl(a))
    return one(a)


def to_row(tree, row_mesh: Mesh):
    """A mesh-replicated pytree (e.g. the dataset) as arrays replicated over one
    row of the mesh, built from the copies its devices already hold."""
    sharding = NamedSharding(row_mesh, P())
    devices = list(row_mesh.devices.flat)

    def one(a):
        if not isinstance(a, jax.Array):
            return a
        pieces = [local_copy(a, d) for d in devices]
        return jax.make_array_from_single_device_arrays(a.shape, sharding, pieces)

    return jax.tree.map(lambda a: _map_keys(one, a), tree)


def split_seeds_over_rows(tree, placement: Placement) -> list:
    """Like :func:`split_seeds`, but each seed's arrays are replicated over its
    seed group's row of the mesh (every ``data`` device of the group) instead
    of living on one device. Local rows only (see :func:`_local_rows`)."""
    mesh = placement.mesh
    groups = _local_rows(mesh)

    def per_seed(a):
        out = []
        by_dev = {sh.device: sh.data for sh in a.addressable_shards}
        for g in groups:
            row_mesh = _row_mesh(mesh, g)
            pieces = [by_dev[d] for d in row_mesh.devices.flat]
            sharding = NamedSharding(row_mesh, P())
            for j in range(pieces[0].shape[0]):
                out.append(
                    jax.make_array_from_single_device_arrays(
                        pieces[0].shape[1:], sharding, [x[j] for x in pieces]
                    )
                )
        return out

    leaves, treedef = jax.tree.flatten(tree)
    columns = [_map_keys_list(per_seed, a) for a in leaves]
    return [jax.tree.unflatten(treedef, list(col)) for col in zip(*columns, strict=True)]


def _map_keys_list(split: Callable, a) -> list:
    """``split(a)`` (a list of arrays), through key_data for typed PRNG keys."""
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(a)
        return [jax.random.wrap_key_data(k, impl=impl) for k in split(jax.random.key_data(a))]
    return split(a)


def device_of(tree):
    """The device holding a single-device pytree (its first array leaf), or None."""
    leaves = [a for a in jax.tree.leaves(tree) if isinstance(a, jax.Array)]
    return next(iter(leaves[0].devices())) if leaves else None


def per_seed_device(per_seed: list, in_axes: tuple, i: int):
    """The device holding seed ``i``'s state (from its first seed-stacked argument)."""
    for p, ax in zip(per_seed, in_axes, strict=True):
        dev = device_of(p[i]) if ax == 0 and p else None
        if dev is not None:
            return dev
    return None
