"""The one seed executor: how per-seed functions run over the ``[S]`` seed axis.

Every per-seed function of the loop is written for ONE seed. A
:class:`SeedExecutor` turns it into a function of ``[S]``-stacked state:

* ``vmap``: one jitted program over all seeds (best on GPU/TPU and for MLPs).
  With a mesh it is ``vmap(..., spmd_axis_name="seed")`` run under
  ``jax.set_mesh``, partitioned by GSPMD from the input shardings.
* ``loop``: the per-seed function called once per seed, on the device that
  holds that seed's shard, ``Placement.threads`` seeds at a time (measured
  faster on XLA:CPU for conv nets, where vmapped convolutions become slow
  grouped convs). This is the pmap-style "one seed group per device"
  execution, done with ``jit`` + shardings instead of the maintenance-mode
  ``jax.pmap``.

Both run the same per-seed function with the same derived keys, so they give
the same labeled pools. Three entry points, one policy:

* :meth:`SeedExecutor.wrap`: a pure per-seed function, jitted (the phases);
* :meth:`SeedExecutor.jit`: a pure per-seed function as a piece of a host-side
  per-seed driver (vmapped under ``vmap``, plain ``jit`` under ``loop``);
* :meth:`SeedExecutor.map`: a host-side per-seed driver built from such
  pieces (the host step loop of training): called once on the stacked state
  under ``vmap``, once per seed (threaded) under ``loop``.

Pool scoring also uses the ``data`` axis of the mesh (the devices left when
there are fewer seeds than devices): see :func:`shard_pool_rows`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxal.parallel import transfer
from jaxal.parallel.mesh import SINGLE_DEVICE, Placement, local_rows, row_mesh

MODES = ("vmap", "loop")


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


def shard_pool_rows(x: jax.Array) -> jax.Array:
    """Split ``x``'s leading (pool-row) axis over the ``data`` axis of the mesh
    in context (set by the executor for functions wrapped with
    ``shard_data=True``); unchanged without one. Call inside jitted code.

    Results do not depend on it: it only decides which device computes which
    rows (random bits are partitionable threefry, identical however split).
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or "data" not in mesh.axis_names or mesh.shape["data"] == 1:
        return x
    return jax.lax.with_sharding_constraint(x, P("data"))


def _lower_in(mesh: Mesh | None, jitted, args):
    """``jitted.lower(*args)`` with ``mesh`` in context (as when it is called)."""
    if mesh is None:
        return jitted.lower(*args)
    with jax.set_mesh(mesh):
        return jitted.lower(*args)


class VmappedFn:
    """A per-seed function vmapped over the seed axis as one jitted program."""

    def __init__(self, fn: Callable, in_axes: tuple, mesh: Mesh | None):
        self.mesh = mesh
        spmd = {} if mesh is None else {"spmd_axis_name": "seed"}
        self.jitted = jax.jit(jax.vmap(fn, in_axes=in_axes, **spmd))

    def __call__(self, *args):
        if self.mesh is None:
            return self.jitted(*args)
        with jax.set_mesh(self.mesh):
            return self.jitted(*args)

    def lower(self, *args):
        return _lower_in(self.mesh, self.jitted, args)


class LoopedFn:
    """A per-seed function called once per local seed, ``threads`` at a time.

    ``fn`` is either pure (``jit=True``: it is jitted here, once, or once per
    mesh row when ``rows``) or a host-side driver of jitted pieces
    (``jit=False``). Seed-stacked arguments (``in_axes`` 0) are cut per seed
    on the seed's device; shared ones (``None``) are taken from the copy that
    device already holds. With ``rows``, each seed's call runs on its seed
    group's whole row of the mesh (seed-group devices x ``data``).
    """

    def __init__(self, fn: Callable, in_axes: tuple, placement: Placement, *, jit: bool, rows):
        self.fn, self.in_axes, self.placement = fn, in_axes, placement
        self.jitted = jax.jit(fn) if jit else fn
        self.rows = rows  # local mesh rows whose calls span the row, or None
        self._row_jits: dict[int, tuple[Mesh, Callable]] = {}
        self._run = SeedRunner(placement.threads)

    def _row_jit(self, g: int) -> tuple[Mesh, Callable]:
        if g not in self._row_jits:
            rmesh = row_mesh(self.placement.mesh, g)
            out = NamedSharding(rmesh, P())  # each device of the row gets the result
            self._row_jits[g] = (rmesh, jax.jit(self.fn, out_shardings=out))
        return self._row_jits[g]

    def calls(self, args) -> list[tuple]:
        """Per local seed: ``(row mesh or None, callable, arguments)``."""
        stacked = [ax == 0 for ax in self.in_axes]
        split = transfer.split_seeds_over_rows if self.rows else transfer.split_seeds
        per_seed = [
            split(a, self.placement) if s else None for a, s in zip(args, stacked, strict=True)
        ]
        # Empty pytrees (e.g. a None argument) split into [] and pass through.
        (n,) = {len(p) for p, s in zip(per_seed, stacked, strict=True) if s and p}
        if self.rows:
            per_group = n // len(self.rows)
            out = []
            for i in range(n):
                rmesh, f = self._row_jit(self.rows[i // per_group])
                call = [
                    (p[i] if p else a) if s else transfer.to_row(a, rmesh)
                    for a, s, p in zip(args, stacked, per_seed, strict=True)
                ]
                out.append((rmesh, f, call))
            return out
        out = []
        for i in range(n):
            dev = None if self.placement.mesh is None else _seed_device(per_seed, i)
            call = [
                (p[i] if p else a) if s else (a if dev is None else transfer.local_copy(a, dev))
                for a, s, p in zip(args, stacked, per_seed, strict=True)
            ]
            out.append((None, self.jitted, call))
        return out

    def __call__(self, *args):
        cs = self.calls(args)
        # Concurrent calls must not share devices when they are multi-device
        # programs (two threads could enqueue them on the devices in opposite
        # orders and deadlock their collectives): a row's seeds run in order,
        # rows side by side. One-device calls run side by side freely.
        lanes: dict = {}
        for i, (rmesh, _, _) in enumerate(cs):
            lanes.setdefault(("seed", i) if rmesh is None else ("row", id(rmesh)), []).append(i)
        lanes = list(lanes.values())
        outs: list = [None] * len(cs)

        def lane(j):
            for i in lanes[j]:
                rmesh, f, call = cs[i]
                if rmesh is None:
                    outs[i] = f(*call)
                else:
                    with jax.set_mesh(rmesh):
                        outs[i] = f(*call)

        self._run(lane, len(lanes))
        return transfer.stack_seeds(outs, self.placement)

    def lower(self, *args):
        """Lowering of the first local seed's call (for cost and compile checks)."""
        rmesh, f, call = self.calls(args)[0]
        return _lower_in(rmesh, f, call)


def _seed_device(per_seed: list, i: int):
    """The device holding seed ``i``'s state (its first seed-stacked argument's)."""
    for p in per_seed:
        dev = transfer.device_of(p[i]) if p else None
        if dev is not None:
            return dev
    return None


class SeedExecutor:
    """Runs per-seed functions over the seed axis of a run.

    Args:
      mode: ``"vmap"`` or ``"loop"`` (already resolved from ``auto``).
      placement: the devices; stacked arguments must already be placed
        (:func:`~jaxal.parallel.transfer.put_seeds`, ``put_shared``).
    """

    def __init__(self, mode: str, placement: Placement = SINGLE_DEVICE):
        if mode not in MODES:
            raise ValueError(f"seed execution {mode!r}; allowed: {', '.join(MODES)}")
        self.mode, self.placement = mode, placement

    def wrap(self, fn: Callable, in_axes: tuple, *, shard_data: bool = False):
        """Pure per-seed ``fn`` as a function of stacked arguments.

        Args:
          fn: a pure per-seed function.
          in_axes: per positional argument, ``0`` (stacked over seeds, sharded
            over ``seed``) or ``None`` (shared by all seeds, e.g. the dataset).
          shard_data: ``fn`` splits its work over the mesh's ``data`` axis with
            :func:`shard_pool_rows` (pool scoring). Under ``vmap`` the program
            runs on the whole mesh; under ``loop`` each seed's call runs on its
            seed group's row of the mesh, when that row lies in this process.

        Returns:
          A callable (with ``.lower(*args)`` and ``.jitted``) of the stacked
          arguments returning stacked outputs, sharded like the inputs.
        """
        mesh = self.placement.mesh
        if self.mode == "vmap":
            return VmappedFn(fn, in_axes, mesh)
        rows = None
        if shard_data and mesh is not None and mesh.shape["data"] > 1:
            rows = local_rows(mesh)
        return LoopedFn(fn, in_axes, self.placement, jit=True, rows=rows)

    def jit(self, fn: Callable, in_axes: tuple) -> Callable:
        """A pure per-seed piece of a host-side driver run by :meth:`map`:
        vmapped over stacked arguments under ``vmap``, plain ``jit`` (called
        with one seed's arguments) under ``loop``."""
        if self.mode == "vmap":
            return VmappedFn(fn, in_axes, self.placement.mesh)
        return jax.jit(fn)

    def map(self, driver: Callable, in_axes: tuple) -> Callable:
        """A host-side per-seed ``driver`` (Python code calling pieces made by
        :meth:`jit`) as a function of stacked arguments: called once with the
        stacked arguments under ``vmap``; once per seed under ``loop``."""
        if self.mode == "vmap":
            return driver
        return LoopedFn(driver, in_axes, self.placement, jit=False, rows=None)
