"""The one error a bad config raises."""

from __future__ import annotations


class ConfigError(ValueError):
    """An invalid experiment config (one line: key, bad value, what is allowed)."""


def _fail(key: str, value, allowed: str) -> None:
    raise ConfigError(f"config.{key}={value!r} is invalid; {allowed}")


# Strategies -----------------------------------------------------------------
