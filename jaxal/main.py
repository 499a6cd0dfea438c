"""Command line: ``python -m jaxal --config=configs/<file>.py[:variant] --workdir=DIR``.

Any config key can be overridden with ``--config.<key>=<value>``. A bad config
(unknown key, strategy, model or dataset; a bad value) stops with one line that
names the key, the value and what is allowed, and exit status 2, before
anything is compiled or trained.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/digits.py:smoke.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder of the run.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
_NO_PROGRESS = flags.DEFINE_bool("no_progress", False, "Hide the progress bar.")

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
        if not _WORKDIR.value:
            _die("--workdir is required")
    except flags.Error as e:
        _die(" ".join(str(e).split()))
    except (KeyError, AttributeError, TypeError, ValueError, FileNotFoundError) as e:
        _die(" ".join(str(e).split()))
    return rest


def _main(argv: list[str]) -> None:
    if len(argv) > 1:
        _die(f"unexpected arguments: {' '.join(argv[1:])}")
    from jaxal.config import ConfigError
    from jaxal.experiment import WorkdirError, run_experiment

    try:
        run_experiment(
            _CONFIG.value, _WORKDIR.value, overwrite=_OVERWRITE.value,
            progress=not _NO_PROGRESS.value,
        )
    except (ConfigError, WorkdirError) as e:
        _die(str(e))


def run() -> None:
    """Console-script entry point (``jaxal ...``)."""
    app.run(_main, flags_parser=_parse)


if __name__ == "__main__":
    run()
