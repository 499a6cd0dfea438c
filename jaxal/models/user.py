"""Bring your own Flax Linen module: ``model.name = "some.module:factory"``.

The factory
-----------

``model.name`` is ``"<importable module>:<factory>"``; the factory may be a dotted
attribute path (``"pkg.mod:Zoo.make"``) and must be importable from ``sys.path``.
jaxal calls ``factory(num_classes, **params)`` where ``params`` are the other
``config.model`` entries. The factory's parameters after the first are the
model's config parameters (defaults are the factory's; a parameter without a
default is required); a factory taking ``**kwargs`` accepts any parameter. A
Linen module class works as a factory too (its fields after ``num_classes``
are the parameters). The factory must return a ``flax.linen.Module`` instance.

The module
----------

``__call__(x, train: bool) -> (logits [B, num_classes], embedding [B, D])``:

* ``x`` is a ``float32`` batch ``[B, ...]`` (channels-last images for jaxal's
  datasets); ``embedding`` is the penultimate representation diversity strategies
  (coreset, BADGE, ...) use.
* ``train=True``: training mode — dropout on, batch norm (if any) uses batch
  statistics and updates its running averages. ``train=False``: eval mode —
  no dropout, batch norm uses the running averages.
* Variables: ``params`` and optionally ``batch_stats`` (batch norm); no other
  collection. Dropout draws from the ``"dropout"`` rng (``self.make_rng("dropout")``,
  as ``nn.Dropout`` does; ``jaxal.models.Dropout`` is a drop-in with cheaper
  masks, see :mod:`jaxal.models.dropout`). Batch norm is detected from a
  ``batch_stats`` collection in the initialised variables.
* Optional: ``__call__`` may also take a keyword ``deterministic: bool`` that
  switches dropout independently of ``train`` (like jaxal's own models). jaxal
  then passes ``deterministic=True`` except when a dropout key is given, and MC
  dropout works even with batch norm.
* Optional: a ``has_batch_norm: bool`` attribute (class attribute or field) lets
  config validation refuse MC dropout before anything runs; without it a module
  is assumed batch-norm free until its first ``init`` (which checks the declaration
  against the variables when there is one).

What jaxal does with it (:func:`from_module`)
---------------------------------------------

* ``init(key, x)``: ``module.init({"params": key, "dropout": key}, x, train=False)``;
  checks the outputs (a 2-tuple of arrays, logits ``[B, num_classes]``, embedding
  ``[B, D]``) and the variable collections, raising a one-line ``ValueError``.
* ``apply(variables, x, *, train, dropout_key=None) -> (logits, embedding, batch_stats)``
  with the semantics of :class:`~jaxal.models.base.Model`:

  - ``train=True``: training (dropout on when a key is given); returns the
    updated ``batch_stats`` (``{}`` without batch norm).
  - ``train=False``, no key: deterministic evaluation.
  - ``train=False`` with a key — MC dropout (``mc.mode='full'``): a module without
    batch norm runs as ``train=True`` with that dropout rng (identical, as there are
    no batch statistics); a module with a ``deterministic`` flag runs with
    ``train=False, deterministic=False``; a module with batch norm and no such flag
    raises ``ValueError`` (use an ensemble, a deterministic strategy, or a jaxal model).

* ``features``/``head`` raise ``ValueError``: there is no backbone/head split, so
  ``mc.mode='head'`` is not possible; use ``mc.mode='full'``.
* ``embedding_dim`` is ``-1``: D is unknown until the input shape is (after ``init``,
  read it off the embedding).
* ``supports_head=False``; ``mc_dropout`` is ``True`` unless the module declares
  ``has_batch_norm=True`` without a ``deterministic`` flag.

Which strategies work: every deterministic strategy (probabilities and/or
embeddings); sample-based strategies (BALD, variation ratios, ...) with
``ensemble_size > 1`` (members, any module), or with MC dropout in
``mc.mode='full'`` for a module without batch norm (or with a ``deterministic``
flag) and nonzero dropout. Ensembles (:func:`jaxal.models.ensemble.ensemble`)
work unchanged on top of a user model.
"""

from __future__ import annotations

import importlib
import inspect
import reprlib
from collections.abc import Callable
from typing import Any

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxal.models.base import Array, Model, Variables

COLLECTIONS = ("params", "batch_stats")


class FactoryParams(dict):
    """``{parameter: default}`` of a user factory (``inspect.Parameter.empty`` = required).

    ``accepts_any`` is ``True`` when the factory takes ``**kwargs``: then any key is
    accepted, the listed ones are only those named in the signature. (A plain
    ``dict(...)`` copy loses the flag.)
    """

    accepts_any: bool = False

    def __init__(self, items=(), *, accepts_any: bool = False):
        super().__init__(items)
        self.accepts_any = accepts_any


def is_user_spec(name: object) -> bool:
    """Whether a ``model.name`` names a user factory (``"module:factory"``)."""
    return isinstance(name, str) and ":" in name


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _error(spec: str, message: str) -> ValueError:
    return ValueError(f"model.name={spec!r}: {message}")


def resolve_factory(spec: str) -> Callable:
    """The callable named by ``"some.module:factory"`` (``"pkg.mod:Zoo.make"`` allowed).

    Raises:
      ValueError: one line, starting ``model.name=...``: malformed spec, module not
        importable, attribute missing, or not callable.
    """
    if not isinstance(spec, str):
        raise _error(spec, "expected a string 'module:factory'")
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr or ":" in attr:
        raise _error(spec, "expected 'module:factory' (e.g. 'mypkg.models:small_mlp')")
    parts = attr.split(".")
    if not all(parts):
        raise _error(spec, f"empty attribute name in {attr!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # any import-time failure of the user module
        raise _error(
            spec, f"cannot import module {module_name!r}: {type(e).__name__}: {_one_line(e)}"
        ) from e
    for i, part in enumerate(parts):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = f"module {module_name!r}" if i == 0 else repr(".".join(parts[:i]))
            raise _error(spec, f"{where} has no attribute {part!r}") from None
    if not callable(obj):
        raise _error(spec, f"{attr!r} is not callable (it is a {type(obj).__name__})")
    return obj


def _is_module_class(obj: object) -> bool:
    return isinstance(obj, type) and issubclass(obj, nn.Module)


def factory_params(spec: str) -> FactoryParams:
    """The config parameters of the user factory ``spec`` with their defaults.

    Every parameter after the first (``num_classes``) that can be passed by name;
    ``inspect.Parameter.empty`` marks a required one. ``**kwargs`` in the
    signature sets :attr:`FactoryParams.accepts_any`. For a Linen module class,
    Flax's ``parent`` and ``name`` fields are left out.

    Raises:
      ValueError: as :func:`resolve_factory`, or a signature that cannot take
        ``num_classes`` positionally / has a required positional-only parameter.
    """
    factory = resolve_factory(spec)
    try:
        sig = inspect.signature(factory)
    except (TypeError, ValueError) as e:
        raise _error(spec, f"cannot read the factory's signature: {_one_line(e)}") from None
    params = list(sig.parameters.values())
    if _is_module_class(factory):
        params = [p for p in params if p.name not in ("parent", "name")]
    P = inspect.Parameter
    if not params or params[0].kind not in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD):
        if not (params and params[0].kind is P.VAR_POSITIONAL):
            raise _error(
                spec,
                f"the factory must take num_classes as its first positional parameter; got {sig}",
            )
    else:
        params = params[1:]
    out: dict[str, object] = {}
    accepts_any = False
    for p in params:
        if p.kind is P.VAR_KEYWORD:
            accepts_any = True
        elif p.kind is P.POSITIONAL_ONLY:
            if p.default is P.empty:
                raise _error(
                    spec,
                    f"factory parameter {p.name!r} is positional-only without a default; "
                    "config parameters are passed by name",
                )
        elif p.kind is not P.VAR_POSITIONAL:
            out[p.name] = p.default
    return FactoryParams(out, accepts_any=accepts_any)


def _describe(obj: object) -> str:
    if isinstance(obj, tuple | list):
        inner = ", ".join(_describe(o) for o in obj)
        return f"({inner},)" if isinstance(obj, tuple) and len(obj) == 1 else f"({inner})"
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return f"{obj.dtype}[{', '.join(str(d) for d in obj.shape)}]"
    return f"a {type(obj).__name__}"


def _has_batch_stats(variables: Variables) -> bool:
    return bool(jax.tree.leaves(variables.get("batch_stats", {})))


def _call_params(module: nn.Module) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(module.__call__).parameters)
    except (TypeError, ValueError):
        return None


def from_module(name: str, module: nn.Module, *, num_classes: int | None = None) -> Model:
    """Wraps a user Linen module (see the module docstring for the contract) as a Model.

    Args:
      name: the model's config name (``"module:factory"``), used in messages.
      module: ``__call__(x, train) -> (logits [B, C], embedding [B, D])``,
        optionally with a keyword ``deterministic`` for dropout.
      num_classes: C, checked against the logits in ``init`` when given.

    Returns:
      The :class:`Model`: ``embedding_dim=-1`` (unknown until init),
      ``supports_head=False``, ``mc_dropout`` as in the module docstring.

    Raises:
      ValueError: ``__call__`` cannot take ``train``, or ``has_batch_norm`` is not a bool.
    """
    sig = _call_params(module)
    if sig is not None:
        kinds = {p.kind for p in sig.values()}
        takes_kwargs = inspect.Parameter.VAR_KEYWORD in kinds
        train_ok = "train" in sig and sig["train"].kind is not inspect.Parameter.POSITIONAL_ONLY
        if not (train_ok or takes_kwargs):
            raise _error(
                name,
                f"{type(module).__name__}.__call__ must be __call__(x, train: bool); "
                f"got __call__{inspect.signature(module.__call__)}",
            )
        separable = "deterministic" in sig and sig["deterministic"].kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        )
    else:
        separable = False
    declared_bn = getattr(module, "has_batch_norm", None)
    if declared_bn is not None and not isinstance(declared_bn, bool):
        raise _error(name, f"module attribute has_batch_norm must be a bool, got {declared_bn!r}")

    def flags(train: bool, deterministic: bool) -> dict[str, bool]:
        return {"train": train, "deterministic": deterministic} if separable else {"train": train}

    def check_outputs(out: object, x: Array) -> None:
        ok = (
            isinstance(out, tuple | list)
            and len(out) == 2
            and all(hasattr(a, "shape") and hasattr(a, "dtype") for a in out)
        )
        if ok:
            logits, emb = out
            b = x.shape[0]
            ok = (
                logits.ndim == 2
                and emb.ndim == 2
                and logits.shape[0] == b
                and emb.shape[0] == b
                and (num_classes is None or logits.shape[1] == num_classes)
            )
        if not ok:
            c = "C" if num_classes is None else num_classes
            raise _error(
                name,
                f"the module's __call__(x, train) must return (logits [B, C], embedding "
                f"[B, D]) with B={x.shape[0]}, C={c}; got {_describe(out)}",
            )

    def init(key: Array, x: Array) -> Variables:
        x = jnp.asarray(x, jnp.float32)
        out, variables = module.init_with_output(
            {"params": key, "dropout": key}, x, **flags(False, True)
        )
        check_outputs(out, x)
        variables = dict(variables)
        extra = sorted(set(variables) - set(COLLECTIONS))
        if extra:
            raise _error(
                name,
                f"the module's variables may hold only {', '.join(COLLECTIONS)}; "
                f"got also {', '.join(extra)}",
            )
        if "params" not in variables:
            raise _error(name, "the module has no params (nothing to train)")
        has_bn = _has_batch_stats(variables)
        if declared_bn is not None and declared_bn != has_bn:
            raise _error(
                name,
                f"the module declares has_batch_norm={declared_bn} but its variables "
                f"{'hold' if has_bn else 'hold no'} batch_stats",
            )
        return variables

    def run(variables, x, kw, rngs, mutable):
        try:
            return module.apply(variables, x, **kw, rngs=rngs, mutable=mutable)
        except flax.errors.InvalidRngError as e:
            raise _error(
                name,
                "the module needs a dropout rng in train mode; pass a dropout_key "
                f"(or give __call__ a `deterministic` flag): {_one_line(e)}",
            ) from e

    def apply(
        variables: Variables, x: Array, *, train: bool, dropout_key: Array | None = None
    ) -> tuple[Array, Array, Any]:
        x = jnp.asarray(x, jnp.float32)
        rngs = {} if dropout_key is None else {"dropout": dropout_key}
        has_bn = _has_batch_stats(variables)
        if train:
            kw = flags(True, dropout_key is None)
            if has_bn:
                (logits, emb), updates = run(variables, x, kw, rngs, ["batch_stats"])
                return logits, emb, updates["batch_stats"]
            logits, emb = run(variables, x, kw, rngs, False)
            return logits, emb, {}
        if dropout_key is None:
            logits, emb = run(variables, x, flags(False, True), rngs, False)
        elif separable:
            logits, emb = run(variables, x, flags(False, False), rngs, False)
        elif has_bn:
            raise _error(
                name,
                "MC dropout (mc.mode='full': eval mode with a dropout key) needs dropout "
                "separable from batch norm, and this module has batch norm: use an ensemble "
                "(ensemble_size > 1), a deterministic strategy, or a jaxal model "
                "(or give the module's __call__ a `deterministic` dropout flag)",
            )
        else:  # no batch statistics: train mode with a dropout rng is exactly MC dropout
            logits, emb = run(variables, x, {"train": True}, rngs, False)
        return logits, emb, {}

    def no_split(*args, **kwargs):
        del args, kwargs
        raise _error(
            name,
            "mc.mode='head' needs a model with a backbone/head split; "
            "use mc.mode='full' with a user module",
        )

    return Model(
        name=name,
        init=init,
        apply=apply,
        features=no_split,
        head=no_split,
        embedding_dim=-1,
        supports_head=False,
        mc_dropout=bool(separable or not declared_bn),
    )


def get_user_model(spec: str, num_classes: int, **kwargs) -> Model:
    """``factory(num_classes, **kwargs)`` of ``spec = "module:factory"``, as a Model.

    Parameters are not validated here (see :func:`jaxal.models.validate`); the
    module's outputs are checked in ``init``.

    Raises:
      ValueError: as :func:`resolve_factory`, or the factory returned no Linen module.
    """
    factory = resolve_factory(spec)
    module = factory(num_classes, **kwargs)
    if not isinstance(module, nn.Module):
        raise _error(
            spec,
            "the factory must return a flax.linen.Module instance; "
            f"it returned {_one_line(reprlib.repr(module))} ({type(module).__name__})",
        )
    return from_module(spec, module, num_classes=num_classes)


__all__ = [
    "FactoryParams",
    "factory_params",
    "from_module",
    "get_user_model",
    "is_user_spec",
    "resolve_factory",
]
