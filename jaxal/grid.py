"""Hyperparameter grids as an array axis: G settings x S seeds in one program.

``config.grid`` lists settings of the numeric optimizer hyperparameters,
separated by ``;``, each a comma list of ``key=value``::

    --config.grid="learning_rate=0.001,weight_decay=0.05;learning_rate=0.01,weight_decay=0.0005"

A key a setting leaves out takes its ``config.train`` value. Only values that
enter the program as *data* may vary: they are injected into the optax state
(``optax.inject_hyperparams``), so every setting runs the same compiled
program and the ``G x S`` (setting, seed) pairs are one leading **lane** axis,
vmapped or looped like seeds (:class:`Lanes`, setting-major:
``lane = g * S + s``). A lane's seed gives its keys, so a (setting, seed)
pair gets exactly the initial pool, model initialisation and batches it gets
when run alone with that setting (``tests/test_grid.py``). Keys that would
change shapes or the program (epochs, batch size, the model, ...) are refused.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# The hyperparameters a grid may vary (each injected into the optimizer state).
GRID_KEYS = ("learning_rate", "weight_decay", "momentum")
# Keys people will try that change shapes or the compiled program.
_PROGRAM_KEYS = {
    "epochs": "train.epochs sets the step count of a round",
    "batch_size": "train.batch_size sets the batch shape",
    "eval_batch_size": "train.eval_batch_size sets the evaluation chunk shape",
    "optimizer": "train.optimizer changes the optimizer's state structure",
    "schedule": "train.schedule changes the program",
    "warmup_epochs": "train.warmup_epochs changes the program",
    "model": "the model changes every shape",
    "width": "model widths change parameter shapes",
    "dropout": "the model's dropout is part of the program",
    "query_size": "the query size sets the selection shape",
}


def _fail(msg: str):
    raise ValueError(f"config.grid{msg}")


def parse(text: str | None) -> tuple[tuple[tuple[str, float], ...], ...]:
    """``config.grid`` as settings: ``((("learning_rate", 0.01), ...), ...)``.

    Empty (``""``/``None``) is no grid. Raises ``ValueError`` with one line
    naming ``config.grid``, the bad part and the allowed keys.
    """
    if text is None or not str(text).strip():
        return ()
    settings = []
    for part in str(text).split(";"):
        part = part.strip()
        if not part:
            _fail(f"={text!r} is invalid; an empty setting between ';'")
        setting: dict[str, float] = {}
        for item in part.split(","):
            key, eq, value = (s.strip() for s in item.partition("="))
            key = key.removeprefix("train.")
            if not eq or not key:
                _fail(f"={text!r} is invalid; {item.strip()!r} is not key=value")
            if key not in GRID_KEYS:
                why = _PROGRAM_KEYS.get(key)
                what = f"{why}, so it cannot vary inside one program" if why else "unknown key"
                _fail(
                    f"={text!r} is invalid; {key!r}: {what}; allowed grid keys: "
                    f"{', '.join(GRID_KEYS)} (run other values as separate runs or a sweep)"
                )
            if key in setting:
                _fail(f"={text!r} is invalid; {key!r} twice in setting {part!r}")
            try:
                v = float(value)
            except ValueError:
                _fail(f"={text!r} is invalid; {key}={value!r} is not a number")
            if not math.isfinite(v):
                _fail(f"={text!r} is invalid; {key}={value!r} is not finite")
            setting[key] = v
        settings.append(tuple(setting.items()))
    names = [name(s) for s in settings]
    for i, n in enumerate(names):
        if n in names[:i]:
            _fail(f"={text!r} is invalid; setting {n!r} is listed twice")
    return tuple(settings)


def _fmt(v: float) -> str:
    return repr(float(v)) if not float(v).is_integer() else str(float(v))


def name(setting) -> str:
    """``learning_rate=0.01,weight_decay=0.0005``: a setting's label in results."""
    return ",".join(f"{k}={_fmt(v)}" for k, v in setting)


def check(settings, train) -> None:
    """Values against the optimizer (``train`` is a TrainSettings).

    Raises ``ValueError`` (one line naming ``config.grid``)."""
    for setting in settings:
        for key, v in setting:
            if key == "learning_rate" and v <= 0:
                _fail(f" setting {name(setting)!r} is invalid; learning_rate must be > 0")
            if key == "weight_decay" and v < 0:
                _fail(f" setting {name(setting)!r} is invalid; weight_decay must be >= 0")
            if key == "momentum":
                if train.optimizer != "sgd":
                    _fail(
                        f" setting {name(setting)!r} is invalid; momentum only applies "
                        f"to train.optimizer=sgd (this run uses {train.optimizer!r})"
                    )
                if not 0 <= v < 1:
                    _fail(f" setting {name(setting)!r} is invalid; momentum must be in [0, 1)")


def hyperparameters(train, setting=()) -> dict[str, float]:
    """The injected values of one setting: ``train``'s, overridden by ``setting``."""
    out = {k: float(getattr(train, k)) for k in GRID_KEYS}
    out.update(dict(setting))
    return out


@dataclasses.dataclass(frozen=True)
class Lanes:
    """The leading axis of a run's state: (setting, seed) pairs, setting-major.

    Without a grid there is one (unnamed) setting and lanes are the seeds.

    Attributes:
      seeds: the run's seeds ``[S]``.
      settings: the grid's settings (``()``: no grid).
      values: the injected hyperparameters of each setting (``[G]`` dicts).
    """

    seeds: np.ndarray
    settings: tuple = ()
    values: tuple = ()

    @classmethod
    def of(cls, seeds, train, settings=()) -> Lanes:
        seeds = np.asarray(seeds)
        grid = tuple(settings) or ((),)
        return cls(seeds, tuple(settings), tuple(hyperparameters(train, s) for s in grid))

    @property
    def grid(self) -> bool:
        return bool(self.settings)

    @property
    def num_settings(self) -> int:
        return max(len(self.settings), 1)

    def __len__(self) -> int:
        return self.num_settings * len(self.seeds)

    @property
    def seed(self) -> np.ndarray:
        """The seed of every lane ``[L]``."""
        return np.tile(self.seeds, self.num_settings)

    @property
    def setting(self) -> np.ndarray:
        """The setting index of every lane ``[L]``."""
        return np.repeat(np.arange(self.num_settings), len(self.seeds))

    @property
    def names(self) -> tuple[str, ...]:
        """Each setting's label (``("",)`` without a grid)."""
        return tuple(name(s) for s in self.settings) or ("",)

    def hparams(self) -> dict[str, np.ndarray]:
        """Per lane, the injected hyperparameters: ``{key: float32[L]}``."""
        return {
            k: np.asarray([self.values[g][k] for g in self.setting], np.float32)
            for k in GRID_KEYS
        }

    def columns(self, lane: int) -> dict:
        """The results.csv columns that identify a lane beyond its seed."""
        if not self.grid:
            return {}
        g = int(self.setting[lane])
        return {"setting": self.names[g], **{k: self.values[g][k] for k in GRID_KEYS}}

    def series(self, label: str) -> list[tuple[str, np.ndarray]]:
        """``(series name, lane mask)`` per setting: ``label`` or ``label@setting``."""
        if not self.grid:
            return [(label, np.ones(len(self), bool))]
        return [(f"{label}@{n}", self.setting == g) for g, n in enumerate(self.names)]


def series_name(row: dict) -> str:
    """The curve a results row belongs to: its strategy, and its grid setting if any."""
    s = row.get("setting") or ""
    return f"{row['strategy']}@{s}" if s else row["strategy"]
