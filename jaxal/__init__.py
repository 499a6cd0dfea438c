"""jaxal: pool-based deep active learning in JAX.

Seeds, ensemble members and MC samples are array axes; acquisition runs on
device; runs checkpoint every round and resume exactly. See README.md.
"""

from jaxal.memory import keep_freed_memory
from jaxal.xla_cpu import prefer_eigen_convolutions

keep_freed_memory()  # before JAX allocates: see jaxal/memory.py (JAXAL_MALLOC=system: off)
prefer_eigen_convolutions()  # before JAX starts: see jaxal/xla_cpu.py (JAXAL_XLA_CPU=default: off)

from jaxal import data, models, strategies  # noqa: E402
from jaxal.assemble import Run, assemble  # noqa: E402
from jaxal.config import ConfigError, base_config  # noqa: E402
from jaxal.experiment import run_experiment  # noqa: E402
from jaxal.loop import SeedState, make_engine, rounds, run_rounds  # noqa: E402
from jaxal.models.base import Model  # noqa: E402
from jaxal.settings import Plan  # noqa: E402
from jaxal.strategies.base import Needs, Outputs, Strategy  # noqa: E402

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
