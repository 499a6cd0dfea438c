"""Moving seed-stacked state between host, devices and mesh rows.

Stacked per-seed state (leading ``[S]`` axis) is sharded over the mesh's
``seed`` axis (:func:`put_seeds`); shared arrays such as the dataset are
replicated (:func:`put_shared`). The ``loop`` executor cuts stacked state into
per-seed pieces on their own devices (:func:`split_seeds`, or replicated over
the seed group's mesh row: :func:`split_seeds_over_rows`) and stacks the
results back (:func:`stack_seeds`). Every function works across processes:
each process touches only the shards it holds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxal.parallel.mesh import Placement, local_rows, row_mesh


def _is_key(a) -> bool:
    return isinstance(a, jax.Array) and jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)


def map_keys(one: Callable, a):
    """Apply an array function to ``a``, through key_data for typed PRNG keys."""
    if _is_key(a):
        return jax.random.wrap_key_data(one(jax.random.key_data(a)), impl=jax.random.key_impl(a))
    return one(a)


def _map_keys_list(split: Callable, a) -> list:
    """``split(a)`` (a list of arrays), through key_data for typed PRNG keys."""
    if _is_key(a):
        impl = jax.random.key_impl(a)
        return [jax.random.wrap_key_data(k, impl=impl) for k in split(jax.random.key_data(a))]
    return split(a)


def _place(tree, sharding):
    """Put every leaf under ``sharding``; works across processes (each process
    passes the same host values and materialises only its own shards)."""

    def one(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            return a if a.sharding == sharding else jax.jit(lambda x: x, out_shardings=sharding)(a)
        host = np.asarray(a)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(lambda a: map_keys(one, a), tree)


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


def tree_index(tree, i: int):
    return jax.tree.map(lambda a: a[i], tree)


def tree_stack(trees: Sequence):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


@functools.partial(jax.jit, static_argnums=1)
def _unstack(tree, n: int) -> list:
    return [tree_index(tree, i) for i in range(n)]


_stack = jax.jit(lambda trees: tree_stack(trees))


def _all_jax(leaves) -> bool:
    return all(isinstance(a, jax.Array) for a in leaves)


def _columns(tree, per_leaf: Callable) -> list:
    """Per-seed pytrees from ``per_leaf(leaf) -> [seed pieces]``."""
    leaves, treedef = jax.tree.flatten(tree)
    columns = [per_leaf(a) for a in leaves]
    return [jax.tree.unflatten(treedef, list(col)) for col in zip(*columns, strict=True)]


def split_seeds(tree, placement: Placement) -> list:
    """Per-seed slices of a seed-sharded stacked pytree, each on its own device."""
    if placement.mesh is None:
        leaves = jax.tree.leaves(tree)
        s = leaves[0].shape[0] if leaves else 0
        if leaves and _all_jax(leaves):  # one dispatch for every leaf and seed
            return _unstack(tree, s)
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

    return _columns(tree, per_seed)


def split_seeds_over_rows(tree, placement: Placement) -> list:
    """Like :func:`split_seeds`, but each seed's arrays are replicated over its
    seed group's row of the mesh (every ``data`` device of the group) instead
    of living on one device. Local rows only (see :func:`local_rows`)."""
    mesh = placement.mesh
    groups = local_rows(mesh)

    def per_seed(a):
        out = []
        by_dev = {sh.device: sh.data for sh in a.addressable_shards}
        for g in groups:
            rmesh = row_mesh(mesh, g)
            pieces = [by_dev[d] for d in rmesh.devices.flat]
            sharding = NamedSharding(rmesh, P())
            for j in range(pieces[0].shape[0]):
                out.append(
                    jax.make_array_from_single_device_arrays(
                        pieces[0].shape[1:], sharding, [x[j] for x in pieces]
                    )
                )
        return out

    return _columns(tree, lambda a: _map_keys_list(per_seed, a))


def stack_seeds(trees: Sequence, placement: Placement):
    """Inverse of :func:`split_seeds`: one seed-sharded stacked pytree."""
    if placement.mesh is None:
        if _all_jax(jax.tree.leaves(list(trees))):  # one dispatch for the whole stack
            return _stack(list(trees))
        return tree_stack(trees)
    sharding = NamedSharding(placement.mesh, P("seed"))
    # `trees` are this process's seeds only (all of them in one process):
    # local seed groups in ascending order, `per_group` seeds each. A row with
    # ANY local device counts here (a row spanning processes is run by each).
    me = jax.process_index()
    rows = [
        i for i, row in enumerate(placement.mesh.devices) if any(d.process_index == me for d in row)
    ]
    per_group = len(trees) // len(rows)
    num_seeds = per_group * placement.seed_devices

    def stack(*xs):
        shape = (num_seeds,) + xs[0].shape
        arrays = []
        for dev, idx in sharding.addressable_devices_indices_map(shape).items():
            start = rows.index((idx[0].start or 0) // per_group) * per_group
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


def to_row(tree, rmesh: Mesh):
    """A mesh-replicated pytree (e.g. the dataset) as arrays replicated over one
    row of the mesh, built from the copies its devices already hold."""
    sharding = NamedSharding(rmesh, P())
    devices = list(rmesh.devices.flat)

    def one(a):
        if not isinstance(a, jax.Array):
            return a
        pieces = [local_copy(a, d) for d in devices]
        return jax.make_array_from_single_device_arrays(a.shape, sharding, pieces)

    return jax.tree.map(lambda a: map_keys(one, a), tree)


def device_of(tree):
    """The device holding a single-device pytree (its first array leaf), or None."""
    leaves = [a for a in jax.tree.leaves(tree) if isinstance(a, jax.Array)]
    return next(iter(leaves[0].devices())) if leaves else None
