"""`import jaxal` turns off YNNPACK convolutions in XLA:CPU (jaxal/xla_cpu.py).

Each case runs in a fresh interpreter: the flag only acts before JAX's
backend starts, and this test process has started it long ago.
"""

import json
import os
import subprocess
import sys

import numpy as np

from jaxal import xla_cpu

PROBE = """
import json, os, sys, warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    if sys.argv[1] == "jax_first":
        import jax.numpy as jnp
        (jnp.ones(2) + 1).block_until_ready()
    import jaxal  # noqa: F401
    import jax
    print(json.dumps({
        "flags": os.environ.get("XLA_FLAGS", ""),
        "warnings": [str(w.message) for w in caught],
        "devices": len(jax.devices()),
    }))
"""


def probe(env_updates, order="jaxal_first"):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_cpu.OPT_OUT)}
    env.update(env_updates)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, order], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_flag_is_appended_and_other_flags_survive():
    res = probe({"XLA_FLAGS": "--xla_force_host_platform_device_count=3"})
    assert res["flags"].split() == [
        "--xla_force_host_platform_device_count=3",
        f"{xla_cpu.FLAG}={xla_cpu.VALUE}",
    ]
    assert res["devices"] == 3  # XLA parsed both flags (an unknown one would abort)
    assert res["warnings"] == []


def test_a_users_own_ynn_setting_wins():
    mine = f"{xla_cpu.FLAG}=individual_dot,individual_convolution"
    res = probe({"XLA_FLAGS": mine})
    assert res["flags"] == mine


def test_opt_out_leaves_xla_flags_alone():
    res = probe({xla_cpu.OPT_OUT: "default"})
    assert res["flags"] == ""
    assert res["warnings"] == []


def test_warns_when_jax_ran_before_import_and_leaves_flags():
    res = probe({}, order="jax_first")
    assert res["flags"] == ""
    assert any("could not turn off" in w and xla_cpu.OPT_OUT in w for w in res["warnings"])


def test_a_second_call_changes_nothing():
    before = os.environ.get("XLA_FLAGS")
    xla_cpu.prefer_eigen_convolutions()
    assert os.environ.get("XLA_FLAGS") == before


CONV_GRAD = """
import sys
import jaxal  # noqa: F401
import jax, jax.numpy as jnp, numpy as np
kx, kw = jax.random.split(jax.random.key(0))
x = jax.random.normal(kx, (8, 14, 14, 16))
w = jax.random.normal(kw, (3, 3, 16, 32)) * 0.1
def loss(w, x):
    dn = ("NHWC", "HWIO", "NHWC")
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)
    return jnp.sum(jax.nn.relu(y) ** 2)
gw, gx = jax.jit(jax.grad(loss, argnums=(0, 1)))(w, x)
np.savez(sys.argv[1], gw=np.asarray(gw), gx=np.asarray(gx))
"""


def test_eigen_and_ynnpack_convolutions_agree_to_float_rounding(tmp_path):
    out = {}
    for name, extra in (("jaxal", {}), ("xla_default", {xla_cpu.OPT_OUT: "default"})):
        env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", xla_cpu.OPT_OUT)}
        env.update(extra)
        path = tmp_path / f"{name}.npz"
        subprocess.run([sys.executable, "-c", CONV_GRAD, str(path)], env=env, check=True)
        out[name] = np.load(path)
    for key in ("gw", "gx"):
        a, b = out["jaxal"][key], out["xla_default"][key]
        assert not np.array_equal(a, 0 * a)
        # float32 sums of 8*14*14*... terms in another order: tolerance relative to the scale
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())
