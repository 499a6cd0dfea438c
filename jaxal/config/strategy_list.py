"""``config.strategy``: the run's strategies, each with its own parameters."""

from __future__ import annotations

from jaxal import strategies as strategies_lib
from jaxal.config.errors import _fail
from jaxal.settings import StrategySpec


def _split_top(text: str, sep: str = ",") -> list[str]:
    """``text`` split at ``sep`` outside parentheses."""
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return [p.strip() for p in out if p.strip()]


def _literal(text: str):
    """A parameter value from the strategy list: int, float, bool, None or a string."""
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip("'\"")


def parse_strategies(config) -> tuple[StrategySpec, ...]:
    """The strategies of ``config.strategy``, each with its own parameters.

    ``config.strategy`` is a comma-separated list of items, each
    ``[label=]name[(key=value, ...)]``, e.g.
    ``"random,subsample(base=entropy,m=500),wide=subsample(base=margin,m=2000)"``.
    An item's parameters are the flat ``config.strategy_params.<key>`` values
    its strategy accepts (the older form, shared by every strategy listed),
    overridden by the item's own ``(key=value)`` ones. The label (default: the
    item as written, without spaces) names the strategy in the results.

    Raises:
      ConfigError: bad syntax, an unknown name or parameter, a repeated label.
    """
    text = str(config.strategy or "")
    items = _split_top(text)
    if not items:
        _fail("strategy", config.strategy, f"allowed: {', '.join(strategies_lib.names())}")
    specs, seen = [], {}
    for item in items:
        label = None
        head = item.split("(", 1)[0]
        if "=" in head:
            label, item = (p.strip() for p in item.split("=", 1))
            head = item.split("(", 1)[0]
        name = head.strip()
        inline: dict = {}
        if "(" in item:
            if not item.endswith(")") or item.count("(") != item.count(")"):
                _fail("strategy", item, "write name(key=value, ...), e.g. subsample(m=500)")
            for arg in _split_top(item[item.index("(") + 1 : -1]):
                if "=" not in arg:
                    _fail("strategy", item, f"parameter {arg!r} needs a value: key=value")
                k, v = (p.strip() for p in arg.split("=", 1))
                inline[k] = _literal(v)
        if name not in strategies_lib.REGISTRY:
            _fail("strategy", name, f"allowed: {', '.join(strategies_lib.names())}")
        accepted = strategies_lib.params_of(name)
        for k in inline:
            if k not in accepted:
                _fail(
                    "strategy",
                    item,
                    f"strategy {name!r} has no parameter {k!r}; "
                    f"allowed: {', '.join(accepted) or '(none)'}",
                )
        params = {
            k: v for k, v in config.strategy_params.items() if v is not None and k in accepted
        }
        params.update(inline)
        for k, v in params.items():
            _check_param_type(spec_key(k, inline), name, k, v, accepted[k])
        label = label or "".join(item.split())
        if label in seen:
            _fail(
                "strategy",
                config.strategy,
                f"{label!r} is listed twice (each runs once per seed, and the runs would be "
                "identical); remove the repeat or give it other parameters, "
                "e.g. subsample(base=margin,m=500)",
            )
        seen[label] = True
        specs.append(StrategySpec(label, name, tuple(params.items())))
    return tuple(specs)


def spec_key(param: str, inline: dict) -> str:
    """The config key a strategy parameter came from (for error messages)."""
    return "strategy" if param in inline else f"strategy_params.{param}"


def _check_param_type(key: str, name: str, param: str, value, default) -> None:
    """A number-, bool- or string-valued parameter must get a value of that kind."""
    if default is None or isinstance(default, dict | tuple | list):
        return
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "True or False"
    elif isinstance(default, int | float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        kind = "a number"
    elif isinstance(default, str):
        from jaxal.strategies.base import Strategy

        ok, kind = isinstance(value, str | Strategy), "a name"
    else:
        return
    if not ok:
        _fail(
            key,
            value,
            f"strategy {name!r} expects {kind} for {param!r} (default {default!r})",
        )


def strategy_names(config) -> list[str]:
    """The labels of the run's strategies, in run order."""
    return [s.label for s in parse_strategies(config)]


def strategy_kwargs(spec: StrategySpec, num_pool: int | None = None) -> dict:
    """``spec``'s parameters. With ``num_pool``, a default candidate-pool size
    ``m`` larger than the pool is cut to the pool."""
    kwargs = spec.kwargs
    default_m = strategies_lib.params_of(spec.name).get("m")
    if num_pool is not None and "m" not in kwargs and isinstance(default_m, int):
        if default_m > num_pool:
            kwargs["m"] = num_pool
    return kwargs
