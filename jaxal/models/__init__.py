"""Classifiers behind one small adapter, found by config name.

Every model maps channels-last images ``float32 [B, H, W, C]`` to
``(logits [B, C], embedding [B, D])`` and is a :class:`Model` of pure functions::

    import jax
    from jaxal import models
    m = models.get_model("resnet18", num_classes=10, width=16)
    variables = m.init(jax.random.key(0), x[:1])
    logits, emb, new_stats = m.apply(variables, x, train=True, dropout_key=key)
    h = m.features(variables, x)                      # backbone once ...
    logits, emb = m.head(variables, h, dropout_key=k)  # ... cheap MC-dropout passes

A name ``"some.module:factory"`` (it contains ``":"``) is a user-supplied Flax
Linen module instead (see :mod:`jaxal.models.user` for the contract)::

    m = models.get_model("mypkg.nets:small_mlp", num_classes=10, width=64)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from jaxal.models.adapter import from_linen
from jaxal.models.base import Model
from jaxal.models.cnn import cnn
from jaxal.models.conv import IMPLS as CONV_IMPLS
from jaxal.models.dropout import Dropout
from jaxal.models.mlp import mlp
from jaxal.models.resnet import resnet18, resnet34, resnet50
from jaxal.models.user import factory_params, from_module, get_user_model, is_user_spec
from jaxal.models.vgg import vgg11, vgg11_fc, vgg16, vgg16_fc, vgg19, vgg19_fc

# name -> factory(num_classes, **params) -> Model. The factories' keyword-only
# arguments are the model's config parameters.
REGISTRY: dict[str, Callable[..., Model]] = {
    "mlp": mlp,
    "cnn": cnn,
    "resnet18": resnet18,
    "resnet34": resnet34,
    "vgg11": vgg11,
    "vgg16": vgg16,
    # Added with the architecture study (experiments/architectures/): App. B of
    # the feature-space paper. vgg*_fc carry its FC head (4096-4096-1000-C).
    "resnet50": resnet50,
    "vgg19": vgg19,
    "vgg11_fc": vgg11_fc,
    "vgg16_fc": vgg16_fc,
    "vgg19_fc": vgg19_fc,
}
NAMES: tuple[str, ...] = tuple(REGISTRY)


def params_of(name: str) -> dict[str, object]:
    """The config parameters of model ``name`` with their defaults (``num_classes`` excluded).

    For a user factory ``"module:factory"``: :func:`jaxal.models.user.factory_params`
    (``inspect.Parameter.empty`` marks a required parameter; ``.accepts_any`` is
    ``True`` when the factory takes ``**kwargs``).

    Raises:
      ValueError: unknown ``name`` (or a user factory that cannot be resolved).
    """
    if is_user_spec(name):
        return factory_params(name)
    _check_name(name)
    sig = inspect.signature(REGISTRY[name])
    return {p.name: p.default for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY}


def _check_name(name: str) -> None:
    if name not in REGISTRY:
        raise ValueError(f"model.name: unknown model {name!r}; allowed: {', '.join(NAMES)}")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate(name: str, params: dict[str, object]) -> None:
    """Checks a model config before anything is built.

    Args:
      name: the model name (``config.model.name``).
      params: the other ``config.model`` entries (``num_classes`` is not one).

    For a user factory (``"module:factory"``) only the keys are checked: unknown
    ones are refused unless the factory takes ``**kwargs``, and required factory
    parameters must be given; values are the factory's business.

    Raises:
      ValueError: naming ``model.name`` or ``model.<key>`` and what is allowed.
    """
    if is_user_spec(name):
        _validate_user(name, params)
        return
    _check_name(name)
    allowed = params_of(name)
    for key, value in params.items():
        if key not in allowed:
            raise ValueError(
                f"model.{key}: model {name!r} has no parameter {key!r}; "
                f"allowed: {', '.join(allowed)}"
            )
        if key in ("dropout", "conv_dropout"):
            if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ValueError(f"model.{key}: a dropout rate must be in [0, 1), got {value!r}")
        elif key == "width":
            if not _is_int(value) or value < 1:
                raise ValueError(f"model.{key}: must be a positive int, got {value!r}")
        elif key == "hidden":
            ok = isinstance(value, list | tuple) and value and all(_is_int(w) for w in value)
            if not ok or min(value) < 1:
                raise ValueError(
                    f"model.{key}: must be a non-empty sequence of positive ints, got {value!r}"
                )
        elif key == "padding" and value not in ("VALID", "SAME"):
            raise ValueError(f"model.{key}: allowed: 'VALID', 'SAME'; got {value!r}")
        elif key == "conv" and value not in CONV_IMPLS:
            raise ValueError(
                f"model.{key}: allowed: {', '.join(repr(v) for v in CONV_IMPLS)}; got {value!r}"
            )


def _validate_user(name: str, params: dict[str, object]) -> None:
    allowed = factory_params(name)
    if not allowed.accepts_any:
        for key in params:
            if key not in allowed:
                raise ValueError(
                    f"model.{key}: model {name!r} has no parameter {key!r}; "
                    f"allowed: {', '.join(allowed) or '(none)'}"
                )
    missing = [k for k, d in allowed.items() if d is inspect.Parameter.empty and k not in params]
    if missing:
        raise ValueError(
            f"model.{missing[0]}: model {name!r} requires parameter(s) {', '.join(missing)}; "
            "set them in config.model"
        )


def get_model(name: str, num_classes: int, **params) -> Model:
    """The model registered as ``name``, built for ``num_classes`` classes.

    Args:
      name: one of :data:`NAMES`, or ``"module:factory"`` for a user Linen module
        (:func:`jaxal.models.user.get_user_model`).
      num_classes: C.
      **params: model parameters (see :func:`params_of`); validated first.

    Returns:
      The :class:`Model`.

    Raises:
      ValueError: as :func:`validate`, or ``num_classes < 1``.
    """
    validate(name, params)
    if not _is_int(num_classes) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if is_user_spec(name):
        return get_user_model(name, num_classes, **params)
    return REGISTRY[name](num_classes, **params)


__all__ = [
    "Dropout",
    "Model",
    "NAMES",
    "REGISTRY",
    "cnn",
    "from_linen",
    "from_module",
    "get_model",
    "get_user_model",
    "is_user_spec",
    "mlp",
    "params_of",
    "resnet18",
    "resnet34",
    "resnet50",
    "validate",
    "vgg11",
    "vgg11_fc",
    "vgg16",
    "vgg16_fc",
    "vgg19",
    "vgg19_fc",
]
