"""XLA:CPU's convolutions through Eigen instead of YNNPACK (set at ``import jaxal``).

jaxlib 0.10's XLA:CPU hands every convolution to YNNPACK by default (the
``individual_convolution`` member of ``--xla_cpu_experimental_ynn_fusion_type``).
On the 2-core AMD EPYC this project is measured on, YNNPACK's convolutions --
above all their gradients -- are several times slower than XLA's own (Eigen)
convolution: with YNNPACK's convolutions turned off, the small CNN's training
step went from 155 to 70 ms and ResNet-18's from 7.0 to 2.1 s
(``benchmarks/train_step.py``, 2026-12-06 table in ``benchmarks/README.md``).
YNNPACK's dots, elementwise and reduce fusions stay on.

:func:`prefer_eigen_convolutions` appends
``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution`` (XLA's
default set less convolutions) to ``XLA_FLAGS``, which XLA reads when JAX
starts its CPU backend. It does nothing

- when ``JAXAL_XLA_CPU=default`` is set (XLA's defaults are left alone);
- when ``XLA_FLAGS`` already names ``xla_cpu_experimental_ynn_fusion_type``
  (your setting wins);
- when the installed jaxlib is not 0.10.x, the series this flag and its
  ``-`` syntax were checked on (XLA aborts on a flag it does not know);
- when JAX's backends are already running (``import jax`` alone is fine; a
  JAX computation before ``import jaxal`` is not): then it warns, since the
  flag can no longer take effect in this process (silently when JAX's
  default backend is not the CPU: the flag only concerns XLA:CPU).

Results differ from XLA's defaults by float rounding only (another summation
order inside each convolution); every execution path of jaxal sees the same
setting, so same seed => same pools and metrics still holds. Processes jaxal
starts (multi-host workers, peers) inherit the flag through the environment.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings

FLAG = "--xla_cpu_experimental_ynn_fusion_type"
VALUE = "-individual_convolution"  # XLA's default set of YNNPACK fusions, less convolutions
OPT_OUT = "JAXAL_XLA_CPU"  # =default: leave XLA's defaults
_done: list[bool] = []


def _backends_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # no JAX yet, or its internals moved: nothing has started
        return False
    started = getattr(xla_bridge, "backends_are_initialized", None)
    return bool(started()) if callable(started) else False


def _jaxlib_checked() -> bool:
    try:
        version = importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return False
    return version.split(".")[:2] == ["0", "10"]


def _cpu_is_default() -> bool:
    import jax

    return jax.default_backend() == "cpu"


def prefer_eigen_convolutions() -> bool:
    """Add the flag described above to ``XLA_FLAGS`` (once per process).

    Returns:
      Whether jaxal set it (False: opted out, the user's own setting, or JAX
      already started).
    """
    if _done:
        return _done[0]
    flags = os.environ.get("XLA_FLAGS", "")
    ok = False
    if os.environ.get(OPT_OUT, "") == "default" or FLAG.lstrip("-") in flags:
        pass
    elif not _jaxlib_checked():
        pass
    elif _backends_started():
        if _cpu_is_default():
            warnings.warn(
                "JAX's backends started before `import jaxal`, so jaxal could not turn off "
                f"YNNPACK convolutions ({FLAG}={VALUE}); conv training on CPU may be several "
                "times slower. Import jaxal before running JAX code, or set XLA_FLAGS "
                f"yourself (see jaxal/xla_cpu.py; {OPT_OUT}=default silences this).",
                stacklevel=3,
            )
    else:
        os.environ["XLA_FLAGS"] = f"{flags} {FLAG}={VALUE}".strip()
        ok = True
    _done.append(ok)
    return ok
