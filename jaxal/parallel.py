"""How the seed axis executes: one place for vmap / loop (and, later, the mesh).

Every per-seed function of the loop is written for ONE seed. :func:`over_seeds`
turns it into a function of ``[S]``-stacked state, either

* ``vmap``: one jitted program over all seeds (best on GPU/TPU and for MLPs), or
* ``loop``: one jitted per-seed program called S times (measured faster on
  XLA:CPU for conv nets, where vmapped convolutions become slow grouped convs).

Both run the same per-seed function with the same derived keys, so they give
the same labeled pools; ``auto`` picks by platform and model, from the
measurements in ``benchmarks/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

# Models whose vmapped training is slower than a loop on XLA:CPU.
_CONV_MODELS = ("cnn", "resnet18", "resnet34", "vgg11", "vgg16")


def resolve_seed_execution(mode: str, model_name: str, platform: str | None = None) -> str:
    """``vmap`` or ``loop`` for ``mode`` in ``("auto", "vmap", "loop")``."""
    if mode != "auto":
        return mode
    platform = platform or jax.default_backend()
    if platform == "cpu" and model_name in _CONV_MODELS:
        return "loop"
    return "vmap"


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


def tree_index(tree, i: int):
    return jax.tree.map(lambda a: a[i], tree)


def tree_stack(trees: Sequence):
    return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def over_seeds(fn: Callable, mode: str, in_axes: tuple, static_argnums=()) -> Callable:
    """Run per-seed ``fn`` over a leading seed axis of the arguments marked 0.

    Args:
      fn: a pure per-seed function.
      mode: ``"vmap"`` or ``"loop"``.
      in_axes: per positional argument, ``0`` (stacked over seeds) or ``None``
        (shared by all seeds, e.g. the dataset).

    Returns:
      A function of the stacked arguments returning stacked outputs.
    """
    if mode == "vmap":
        return jax.jit(jax.vmap(fn, in_axes=in_axes))
    if mode != "loop":
        raise ValueError(f"seed execution {mode!r}; allowed: vmap, loop")
    jitted = jax.jit(fn)

    def looped(*args):
        sizes = {
            leaf.shape[0]
            for a, ax in zip(args, in_axes, strict=True)
            if ax == 0
            for leaf in jax.tree.leaves(a)[:1]
        }
        (s,) = sizes
        outs = [
            jitted(
                *[tree_index(a, i) if ax == 0 else a for a, ax in zip(args, in_axes, strict=True)]
            )
            for i in range(s)
        ]
        return tree_stack(outs)

    looped.jitted = jitted  # for compile-count checks
    return looped
