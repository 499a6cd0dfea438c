"""jaxal's BatchBALD against batchbald_redux's ``get_batchbald_batch`` on the same
consistent MC-dropout samples.

Needs the ``peers`` extra plus ``batchbald-redux`` (installed ``--no-deps``; see
``/work/shared/PEERS.md``); without them the module is skipped. Both run in the
exact regime (``C**i <= num_samples`` at every step), so the picks must agree;
batchbald_redux's sampled phase draws with torch's RNG and is not compared.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
redux = pytest.importorskip("batchbald_redux.batchbald")

from jaxal import models, strategies  # noqa: E402
from jaxal.predict import make_predict  # noqa: E402
from jaxal.strategies.base import Outputs  # noqa: E402
from tests import reference as ref  # noqa: E402

pytestmark = pytest.mark.peers


def _consistent_samples(seed, n, c, t, mode):
    """``[T, N, C]`` consistent MC-dropout probabilities of a small CNN."""
    m = models.get_model("cnn", c, dropout=0.5, conv_dropout=0.25, padding="SAME")
    x = jax.random.normal(jax.random.key(seed), (n, 8, 8, 1))
    v = m.init(jax.random.key(seed + 1), x[:1])
    needs = strategies.get("batchbald").needs
    assert needs.consistent
    predict = make_predict(m, needs, samples=t, mode=mode, chunk=7)
    return np.asarray(predict(v, x, jax.random.key(seed + 2)).probs, np.float64)


@pytest.mark.parametrize(
    "seed, n, c, t, k, mode",
    [(0, 20, 3, 8, 3, "full"), (1, 25, 4, 6, 3, "head"), (2, 16, 2, 10, 5, "full")],
)
def test_batchbald_matches_batchbald_redux_on_consistent_samples(seed, n, c, t, k, mode):
    probs = _consistent_samples(seed, n, c, t, mode)
    num_samples = c ** (k - 1)  # every step exact in both implementations
    log_probs_n_k_c = torch.from_numpy(np.log(np.swapaxes(probs, 0, 1)))  # [N, T, C]
    theirs = redux.get_batchbald_batch(log_probs_n_k_c, k, num_samples, dtype=torch.double)
    s = strategies.get("batchbald", num_samples=num_samples, chunk_size=8)
    ours = s.select(
        jax.random.key(0), Outputs(probs=jnp.asarray(probs, jnp.float32)), jnp.zeros(n, bool), k
    )
    np.testing.assert_array_equal(np.asarray(ours), theirs.indices)
    # Their batch scores are the joint mutual informations of the growing batch.
    for i in range(k):
        want = ref.joint_mutual_information(probs, theirs.indices[: i + 1])
        assert theirs.scores[i] == pytest.approx(want, rel=1e-6, abs=1e-9)
