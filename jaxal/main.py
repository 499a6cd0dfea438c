"""Command line: ``python -m jaxal --config=configs/<file>.py[:variant] --workdir=DIR``.

Any config key can be overridden with ``--config.<key>=<value>``. ``budget`` and
``num_rounds`` exclude each other: the one given last on the command line wins
(``--config.num_rounds=5`` on a config that sets a budget runs 5 rounds). A bad config
(unknown key, strategy, model or dataset; a bad value) stops with one line that
names the key, the value and what is allowed, and exit status 2, before
anything is compiled or trained.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config file, e.g. configs/digits.py:smoke.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder of the run.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace a finished run in --workdir.")
_SKIP_FINISHED = flags.DEFINE_bool(
    "skip_finished",
    False,
    "Exit 0 without running when --workdir already holds a finished run of the same "
    "config (a different finished config: exit 2). Used by `jaxal sweep`.",
)
_NO_PROGRESS = flags.DEFINE_bool("no_progress", False, "Hide the progress bar.")
_PRINT_CONFIG = flags.DEFINE_bool(
    "print_config", False, "Print the resolved config (after overrides) and exit."
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "Multi-process runs: host:port of process 0 (jax.distributed). "
    "Default: $JAX_COORDINATOR_ADDRESS.",
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "Multi-process runs: process count. Default: $JAX_NUM_PROCESSES or 1."
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "Multi-process runs: this process's index. Default: $JAX_PROCESS_ID or 0."
)
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Join a multi-process run whose settings JAX detects from the cluster "
    "(SLURM, Open MPI, Kubernetes, ...): jax.distributed.initialize() with what "
    "the flags above and their variables leave unset.",
)

USAGE_EXIT = 2
DISK_EXIT = 74  # EX_IOERR: a write to the workdir failed


def _die(message: str) -> None:
    print(f"jaxal: error: {message}", file=sys.stderr)
    sys.exit(USAGE_EXIT)


# --config.<key> flags of which a config sets exactly one: the last given wins.
_EXCLUSIVE = ("budget", "num_rounds")


def _take_exclusive(argv: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """``argv`` without ``--config.budget`` / ``--config.num_rounds``, and those
    ``(key, raw value)`` in command-line order (``--k=v`` or ``--k v``)."""
    rest, taken, i = [], [], 0
    names = {f"config.{k}": k for k in _EXCLUSIVE}
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.lstrip("-").partition("=")
        if i > 0 and arg.startswith("-") and name in names:
            if not eq:
                if i + 1 >= len(argv):
                    _die(f"--{name} needs a value, e.g. --{name}=5 (or None)")
                value, i = argv[i + 1], i + 1
            taken.append((names[name], value))
        else:
            rest.append(arg)
        i += 1
    return rest, taken


def _apply_exclusive(config, taken: list[tuple[str, str]]) -> None:
    """Set ``budget`` / ``num_rounds`` in order: setting one clears the other."""
    from jaxal.config import apply_overrides

    for key, raw in taken:
        if raw.strip().lower() == "none":
            config[key] = None
            continue
        try:
            value = int(raw)
        except ValueError:
            _die(f"--config.{key}={raw!r} is invalid; expected an integer or None")
        apply_overrides(config, {key: value})


def _parse(argv: list[str]) -> list[str]:
    """absl flag parsing, turning every flag/config error into one line + exit 2."""
    argv, exclusive = _take_exclusive(argv)
    try:
        rest = flags.FLAGS(argv)
        if _CONFIG.value is None:
            _die("--config is required, e.g. --config=configs/digits.py:smoke")
        _CONFIG.value.keys()  # a config file that failed to load raises here
        if not _WORKDIR.value and not _PRINT_CONFIG.value:
            _die("--workdir is required")
        _apply_exclusive(_CONFIG.value, exclusive)
    except (flags.Error, KeyError, AttributeError, TypeError, ValueError, OSError) as e:
        _die(_flag_error_message(e, argv))
    return rest


def argv_flag(argv: list[str], name: str) -> str:
    return next((a for a in argv if a.lstrip("-").startswith(name + "=")), f"--{name}")


def _unknown_key_message(error: KeyError, argv: list[str]) -> str | None:
    """``unknown config key config.a.b; did you mean config.a.c?`` for the flag that failed."""
    import difflib

    from jaxal.config import base_config

    text = str(error.args[0]) if error.args else ""
    bad = text.splitlines()[0].strip().strip("'\"") if text else ""
    known = base_config()
    for arg in argv[1:]:
        name = arg.split("=", 1)[0].lstrip("-")
        if not name.startswith("config.") or bad not in name.split("."):
            continue
        parts = name.split(".")[1:]
        node, path = known, "config"
        for part in parts:
            if hasattr(node, "keys") and part in node.keys():
                node, path = node[part], f"{path}.{part}"
                continue
            siblings = list(node.keys()) if hasattr(node, "keys") else []
            close = difflib.get_close_matches(part, siblings, n=1)
            msg = f"unknown config key {name}: {path} has no field {part!r}"
            if path == "config.strategy_params" and len(parts) > 2:
                return (
                    f"{msg}; give a strategy its own parameters in the strategy list, e.g. "
                    f"--config.strategy='{part}({parts[-1]}=...)', or set the flat "
                    f"--config.strategy_params.{parts[-1]}=... for every strategy"
                )
            if close:
                return f"{msg}; did you mean {path}.{close[0]}?"
            return f"{msg} (jaxal --help lists the keys)"
    return None


def _flag_error_message(error: Exception, argv: list[str]) -> str:
    """One readable line for a flag error; unknown ``--config.<key>`` names the key."""
    import re

    names = re.findall(r"'([A-Za-z_]\w*)'", str(error).replace("\\'", "'"))
    for bad in names[:1]:  # an unknown --config.<key> ('name' + "Did you mean ...")
        msg = _unknown_key_message(KeyError(bad), argv)
        if msg:
            return msg
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
    if _PRINT_CONFIG.value:
        print(_CONFIG.value)
        return
    from jaxal.config import ConfigError
    from jaxal.experiment import run_experiment
    from jaxal.interrupt import Interrupted
    from jaxal.parallel import initialize_distributed
    from jaxal.workdir import DiskError, WorkdirError

    coordinator, num_processes, process_id = _distributed_settings()
    if _DISTRIBUTED.value or (num_processes or 1) > 1:
        if not _DISTRIBUTED.value and not coordinator:
            _die(
                "--num_processes > 1 needs --coordinator_address=host:port "
                "(or $JAX_COORDINATOR_ADDRESS)"
            )
        try:
            initialize_distributed(coordinator, num_processes, process_id)
        except (ValueError, RuntimeError) as e:  # e.g. --distributed outside a cluster
            _die(f"could not join the multi-process run: {' '.join(str(e).split())}")

    skip = _SKIP_FINISHED.value and not _OVERWRITE.value
    if skip and _skip_finished(_CONFIG.value, _WORKDIR.value):
        return
    try:
        run_experiment(
            _CONFIG.value,
            _WORKDIR.value,
            overwrite=_OVERWRITE.value,
            progress=not _NO_PROGRESS.value,
        )
    except DiskError as e:
        print(f"jaxal: error: {e}", file=sys.stderr)
        sys.exit(DISK_EXIT)
    except (ConfigError, WorkdirError) as e:
        _die(str(e))
    except Interrupted as stop:
        print(
            f"jaxal: interrupted by {stop.name} {getattr(stop, 'where', '')}; the finished "
            "rounds are saved — rerun the same command to resume",
            file=sys.stderr,
        )
        sys.exit(stop.exit_status)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        print("jaxal: interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)


def _skip_finished(config, workdir: str) -> bool:
    """``--skip_finished``: True when ``workdir`` holds a finished run of ``config``;
    a finished run of another config stops with exit 2 naming the first differing key."""
    import json

    from jaxal.experiment import _diff
    from jaxal.workdir import DONE

    if not os.path.exists(os.path.join(workdir, DONE)):
        return False
    try:
        with open(os.path.join(workdir, "config.json")) as f:
            saved = json.load(f)
    except (OSError, ValueError) as e:
        _die(f"workdir {workdir!r} holds a finished run without a readable config.json ({e})")
    diff = _diff(saved, json.loads(config.to_json_best_effort()))
    if diff:
        _die(
            f"workdir {workdir!r} holds a finished run of a different config ({diff[0]}); "
            "use another --workdir or pass --overwrite"
        )
    print(f"jaxal: {workdir} already holds this finished run; skipped")
    return True


def _env_int(flag, name: str) -> int | None:
    """``flag``'s value, else the integer in environment variable ``name``."""
    if flag.value is not None:
        return flag.value
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        _die(f"${name}={raw!r} is not an integer")


def _distributed_settings() -> tuple[str | None, int | None, int | None]:
    """(coordinator, processes, process id): flags first, then ``$JAX_*`` variables."""
    coordinator = _COORDINATOR.value or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    num_processes = _env_int(_NUM_PROCESSES, "JAX_NUM_PROCESSES")
    process_id = _env_int(_PROCESS_ID, "JAX_PROCESS_ID")
    if num_processes is not None and num_processes < 1:
        _die(f"--num_processes={num_processes} must be >= 1")
    if process_id is not None and num_processes is not None:
        if not 0 <= process_id < num_processes:
            _die(f"--process_id={process_id} must be in [0, {num_processes}) (--num_processes)")
    if (num_processes or 1) > 1 and process_id is None:
        _die("--num_processes > 1 needs --process_id (or $JAX_PROCESS_ID)")
    return coordinator, num_processes, process_id


_HELP = ("-h", "--help", "-help", "--helpshort", "--helpfull", "-?")


def run() -> None:
    """Console-script entry point (``jaxal ...``)."""
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        from jaxal.reporting import main as report_main

        sys.exit(report_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "sweep":
        from jaxal.sweep import main as sweep_main

        sys.exit(sweep_main(sys.argv[2:]))
    if any(a in _HELP for a in sys.argv[1:]):
        from jaxal.cli_help import help_text

        path = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--config=")), None)
        print(help_text(path), end="")
        sys.exit(0)
    app.run(_main, flags_parser=_parse)


if __name__ == "__main__":
    run()
