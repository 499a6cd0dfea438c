"""Run checkpoints: the one module that talks to Orbax.

A checkpoint step holds three Orbax items in one step directory:

- ``state``: the run's pytree, stored as a flat dict of arrays (one entry per
  leaf, named ``<index>_<path>``). Flattening keeps NamedTuples, ``None`` and
  ``()`` out of Orbax's way; the caller's template gives the structure back.
  Typed PRNG key arrays (``jax.random.key``) cannot be stored by Orbax, so they
  are saved as ``jax.random.key_data`` and re-wrapped on restore.
- ``meta``: a JSON dict (config, results rows so far, round index, ...).
- ``layout``: JSON describing every leaf (path, shape, dtype, key impl), used
  to check a restore template and to re-wrap keys.

Arrays go to Orbax as they are (no host conversion), so sharded and
multi-process arrays are written by Orbax itself, each process its own shards.
Everything Orbax-specific lives here so an Orbax API change stays local.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

PyTree = Any

_STATE, _META, _LAYOUT = "state", "meta", "layout"
_FORMAT = 1
# Written by Orbax into a step directory as the last act of a save (before the
# atomic rename on local disks, as the commit marker on object stores).
_COMMIT_FILE = ocp.path.atomicity.COMMIT_SUCCESS_FILE


class CheckpointWarning(UserWarning):
    """A checkpoint step was unreadable and an older one is used instead."""


class LayoutMismatchError(ValueError):
    """The restore template does not match the stored tree (paths, shapes or dtypes)."""


def _is_key(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _dtype_name(x) -> str:
    if isinstance(x, (bool, int, float)):
        return type(x).__name__
    return str(x.dtype)


def _storage_name(index: int, path) -> str:
    readable = re.sub(r"[^A-Za-z0-9_]+", "_", jax.tree_util.keystr(path)).strip("_")
    return f"{index:05d}_{readable}"[:120]


def _json_default(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (np.ndarray, jax.Array)):
        return np.asarray(x).tolist()
    raise TypeError(f"checkpoint meta: {type(x).__name__} is not JSON serialisable")


def _to_json(meta: dict) -> dict:
    """A plain-JSON deep copy of ``meta`` (numpy scalars/arrays become numbers/lists)."""
    return json.loads(json.dumps(meta, default=_json_default))


def _flatten(tree: PyTree):
    """``(specs, stored_leaves, treedef)`` of a state tree."""
    with_path, treedef = jax.tree_util.tree_flatten_with_path(tree)
    specs, stored = [], {}
    for i, (path, leaf) in enumerate(with_path):
        name = _storage_name(i, path)
        impl = None
        if _is_key(leaf):
            impl = str(jax.random.key_impl(leaf))
            value = jax.random.key_data(leaf)  # uint32[..., key_size], same sharding
        elif isinstance(leaf, np.generic):
            value = np.asarray(leaf)  # Orbax takes 0-d arrays, not numpy scalars
        else:
            value = leaf
        specs.append(
            {
                "path": jax.tree_util.keystr(path),
                "name": name,
                "shape": list(np.shape(leaf)),
                "dtype": _dtype_name(leaf),
                "key_impl": impl,
            }
        )
        stored[name] = value
    return specs, stored, treedef


def _check_layout(specs: list[dict], template: PyTree) -> None:
    with_path, _ = jax.tree_util.tree_flatten_with_path(template)
    got = [(jax.tree_util.keystr(p), list(np.shape(x)), _dtype_name(x)) for p, x in with_path]
    want = [(s["path"], s["shape"], s["dtype"]) for s in specs]
    if got == want:
        return
    diffs = [f"stored {w} vs template {g}" for w, g in zip(want, got, strict=False) if w != g][:5]
    raise LayoutMismatchError(
        f"restore template does not match the checkpoint ({len(want)} stored leaves, "
        f"{len(got)} template leaves): " + "; ".join(diffs)
    )


def _abstract(leaf):
    """What Orbax restores one stored leaf into, given the template's leaf."""
    sharding = getattr(leaf, "sharding", None)
    if _is_key(leaf):
        data = jax.eval_shape(jax.random.key_data, jax.ShapeDtypeStruct(leaf.shape, leaf.dtype))
        return jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=sharding)
    if isinstance(leaf, jax.Array):
        return jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding)
    if isinstance(leaf, np.generic):
        return np.asarray(leaf)
    return leaf  # ShapeDtypeStruct, np.ndarray or Python scalar


def _unstore(spec: dict, value, template_leaf=None):
    if spec["key_impl"] is not None:
        return jax.random.wrap_key_data(value, impl=spec["key_impl"])
    if isinstance(template_leaf, np.generic):
        return np.asarray(value)[()]
    return value


class RunCheckpointer:
    """Saves and restores a run's state pytree plus JSON metadata, one step per round.

    Example::

      ckpt = RunCheckpointer(os.path.join(workdir, "checkpoints"))
      found = ckpt.restore_latest_good(template=state)
      if found is not None:
        step, state, meta = found
      ...
      ckpt.save(round_index, state, {"rows": rows, "round": round_index})
      ckpt.close()

    Call every method on every process of a multi-process run (Orbax
    synchronises them and writes each process's shards).
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int = 3,
        async_save: bool = True,
        name: str = "run",
    ):
        """Open (creating if needed) a checkpoint directory.

        Args:
          directory: the checkpoint folder, normally ``<workdir>/checkpoints``.
          max_to_keep: newest steps kept on disk; older ones are deleted.
          async_save: write in a background thread; :meth:`save` returns once the
            arrays are copied off the device, :meth:`wait` blocks until written.
          name: the prefix of this checkpointer's multi-process barriers, the
            same on every process and distinct between checkpointers open at
            once: Orbax names some barriers without a counter, so two managers
            saving at the same time would otherwise meet at one barrier
            ("Barrier ... is already ongoing").
        """
        directory = os.fspath(directory)
        if "://" not in directory:  # keep gs:// and other remote paths as given
            directory = os.path.abspath(directory)
        self.directory = epath.Path(directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            enable_async_checkpointing=async_save,
            cleanup_tmp_directories=True,  # remove partial saves left by a killed run
            create=True,
            multiprocessing_options=ocp.options.MultiprocessingOptions(
                barrier_sync_key_prefix=f"jaxal-{name}"
            ),
        )
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=(_STATE, _META, _LAYOUT)
        )

    # --- writing -----------------------------------------------------------

    def save(self, step: int, state_tree: PyTree, meta: dict) -> None:
        """Save ``state_tree`` and ``meta`` as checkpoint ``step``.

        An existing checkpoint with the same step (e.g. an unreadable one that a
        resume skipped) is replaced.

        Args:
          step: the step number (the round index); need not exceed the latest.
          state_tree: a pytree of jax/numpy arrays and Python scalars; typed PRNG
            key leaves are allowed; ``None``/``()`` subtrees are kept by the
            restore template.
          meta: JSON-serialisable dict (numpy scalars/arrays are converted).
        """
        step = int(step)
        specs, stored, _ = _flatten(state_tree)
        layout = {"format": _FORMAT, "leaves": specs}
        self._manager.wait_until_finished()
        if step in self._manager.all_steps():
            logging.warning("replacing existing checkpoint step %d in %s", step, self.directory)
            self._manager.delete(step)
        items = {_META: ocp.args.JsonSave(_to_json(meta)), _LAYOUT: ocp.args.JsonSave(layout)}
        if stored:  # Orbax refuses an empty item; an empty tree needs only its layout
            items[_STATE] = ocp.args.StandardSave(stored)
        self._manager.save(step, args=ocp.args.Composite(**items), force=True)

    def wait(self) -> None:
        """Block until every pending asynchronous save is on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release Orbax's resources."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> RunCheckpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- reading -----------------------------------------------------------

    def all_steps(self) -> list[int]:
        """Steps on disk, ascending (after pending saves finish)."""
        self._manager.wait_until_finished()
        return sorted(self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest step on disk, or ``None`` when there is none."""
        self._manager.wait_until_finished()
        return self._manager.latest_step()

    def restore(self, step: int | None = None, template: PyTree = None) -> tuple[PyTree, dict]:
        """Restore one checkpoint step.

        Args:
          step: the step to read (default: the latest).
          template: a pytree like the saved one (concrete arrays or
            ``jax.ShapeDtypeStruct``s); the result takes its structure
            (NamedTuples included), dtypes and shardings. ``None`` returns a
            flat dict ``{keystr(path): leaf}`` in the stored shardings.

        Returns:
          ``(state_tree, meta)``.

        Raises:
          FileNotFoundError: no checkpoint (or no such step).
          LayoutMismatchError: ``template`` has other paths, shapes or dtypes.
          Exception: whatever Orbax raises on a corrupted step.
        """
        self._manager.wait_until_finished()
        if step is None:
            step = self._manager.latest_step()
            if step is None:
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
        step = int(step)
        step_dir = self.directory / str(step)  # Orbax's default step naming
        if not step_dir.is_dir():
            raise FileNotFoundError(f"no checkpoint step {step} in {self.directory}")
        if not (step_dir / _COMMIT_FILE).exists():
            raise FileNotFoundError(f"checkpoint step {step} has no commit marker {_COMMIT_FILE}")
        layout = self._manager.restore(step, args=ocp.args.Composite(layout=ocp.args.JsonRestore()))
        layout = layout[_LAYOUT]
        if not isinstance(layout, dict) or layout.get("format") != _FORMAT:
            raise ValueError(f"checkpoint step {step}: unknown layout {str(layout)[:80]}")
        specs = layout["leaves"]
        if template is not None:
            _check_layout(specs, template)
            t_leaves, treedef = jax.tree_util.tree_flatten(template)
        else:
            t_leaves, treedef = [None] * len(specs), None
        items = {_META: ocp.args.JsonRestore()}
        if specs:
            target = None
            if template is not None:
                target = {s["name"]: _abstract(x) for s, x in zip(specs, t_leaves, strict=True)}
            items[_STATE] = ocp.args.StandardRestore(target)
        got = self._manager.restore(step, args=ocp.args.Composite(**items))
        stored = got[_STATE] if specs else {}
        if set(stored) != {s["name"] for s in specs}:
            raise ValueError(f"checkpoint step {step}: stored arrays do not match its layout")
        leaves = [_unstore(s, stored[s["name"]], x) for s, x in zip(specs, t_leaves, strict=True)]
        meta = got[_META]
        if treedef is None:
            return {s["path"]: leaf for s, leaf in zip(specs, leaves, strict=True)}, meta
        return jax.tree_util.tree_unflatten(treedef, leaves), meta

    def restore_latest_good(self, template: PyTree = None) -> tuple[int, PyTree, dict] | None:
        """Restore the newest readable step, skipping (with a warning) corrupted ones.

        A step that fails to restore (missing or truncated files, no commit
        marker, unreadable JSON) is reported with a :class:`CheckpointWarning`
        naming it, and the next older step is tried. Unreadable steps stay on
        disk; saving the same step number later replaces them.

        Args:
          template: as in :meth:`restore`.

        Returns:
          ``(step, state_tree, meta)``, or ``None`` when no step is readable.

        Raises:
          LayoutMismatchError: a readable step does not match ``template`` (a
            changed run, not a corrupted file).
        """
        self._manager.wait_until_finished()
        self._manager.reload()
        for step in sorted(self._manager.all_steps(), reverse=True):
            try:
                state, meta = self.restore(step, template)
            except LayoutMismatchError:
                raise
            except Exception as e:  # noqa: BLE001 - any read failure means a bad step
                msg = f"{type(e).__name__}: {e}"
                warnings.warn(
                    f"checkpoint step {step} in {self.directory} is unreadable ({msg[:300]}); "
                    "falling back to an older step",
                    CheckpointWarning,
                    stacklevel=2,
                )
                continue
            return step, state, meta
        return None
