"""Command line: ``python -m jaxal --config=configs/<file>.py[:variant] --workdir=DIR``.

Any config key can be overridden with ``--config.<key>=<value>``. A bad config
(unknown key, strategy, model or dataset; a bad value) stops with one line that
names the key, the value and what is allowed, and exit status 2, before
anything is compiled or trained.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/digits.py:smoke.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder of the run.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
_NO_PROGRESS = flags.DEFINE_bool("no_progress", False, "Hide the progress bar.")
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-process runs: host:port of process 0 (jax.distributed)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Multi-process runs: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "Multi-process runs: this process's index.")

USAGE_EXIT = 2


def _die(message: str) -> None:
    print(f"jaxal: error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT)


def _parse(argv: list[str]) -> list[str]:
    """absl flag parsing, turning every flag/config error into one line + exit 2."""
    try:
        rest = flags.FLAGS(argv)
        if _CONFIG.value is None:
            _die("--config is required, e.g. --config=configs/digits.py:smoke")
        _CONFIG.value.keys()  # a config file that failed to load raises here
        if not _WORKDIR.value:
            _die("--workdir is required")
    except (flags.Error, KeyError, AttributeError, TypeError, ValueError, OSError) as e:
        _die(_flag_error_message(e, argv))
    return rest


def argv_flag(argv: list[str], name: str) -> str:
    return next((a for a in argv if a.lstrip("-").startswith(name + "=")), f"--{name}")


def _flag_error_message(error: Exception, argv: list[str]) -> str:
    """One readable line for a flag error; unknown ``--config.<key>`` names the key."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    if any(ln.startswith("Traceback") for ln in lines):
        lines = [f"{argv_flag(argv, 'config')}: {lines[-1]}"]  # the config file's own error
    text = " ".join(" ".join(lines).split())
    if "Failed loading config file" in text and "No such file" in text:
        path = argv_flag(argv, "config").split("=", 1)[-1].split(":")[0]
        return f"--config: no such config file {path!r}"
    if isinstance(error, KeyError | AttributeError):
        bad = str(error.args[0]).strip("'\"") if error.args else ""
        for arg in argv[1:]:
            name = arg.split("=", 1)[0].lstrip("-")
            if name.startswith("config.") and name.split(".")[-1] == bad:
                return (
                    f"unknown config key {name}: {'.'.join(name.split('.')[:-1])} has no "
                    f"field {bad!r} (see the config file or jaxal/config.py for the keys)"
                )
    return text


def _main(argv: list[str]) -> None:
    logging.set_verbosity(logging.WARNING)  # no INFO chatter (backend probing, fonts)
    if len(argv) > 1:
        _die(f"unexpected arguments: {' '.join(argv[1:])}")
    from jaxal.config import ConfigError
    from jaxal.experiment import WorkdirError, run_experiment
    from jaxal.parallel import initialize_distributed

    if _NUM_PROCESSES.value > 1:
        if not _COORDINATOR.value:
            _die("--num_processes > 1 needs --coordinator_address=host:port")
        initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)

    try:
        run_experiment(
            _CONFIG.value,
            _WORKDIR.value,
            overwrite=_OVERWRITE.value,
            progress=not _NO_PROGRESS.value,
        )
    except (ConfigError, WorkdirError) as e:
        _die(str(e))


def run() -> None:
    """Console-script entry point (``jaxal ...``)."""
    app.run(_main, flags_parser=_parse)


if __name__ == "__main__":
    run()
