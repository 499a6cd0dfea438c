"""jaxal: pool-based deep active learning in JAX.

Seeds, ensemble members and MC samples are array axes; acquisition runs on
device; runs checkpoint every round and resume exactly. See README.md.
"""

from jaxal import data, models, strategies
from jaxal.assemble import Run, assemble
from jaxal.config import ConfigError, base_config
from jaxal.experiment import run_experiment
from jaxal.loop import SeedState, make_engine, rounds, run_rounds
from jaxal.models.base import Model
from jaxal.settings import Plan
from jaxal.strategies.base import Needs, Outputs, Strategy

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Model",
    "Needs",
    "Outputs",
    "Plan",
    "Run",
    "SeedState",
    "Strategy",
    "assemble",
    "base_config",
    "data",
    "make_engine",
    "models",
    "rounds",
    "run_experiment",
    "run_rounds",
    "strategies",
]
