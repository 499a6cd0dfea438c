"""Adaptive labeling rate and active-learning-level stopping (host side, pure).

From Riahi, Raymond & Giard-Leroux, *Active Learning of Deep Neural Networks*,
IFT780 project report, Université de Sherbrooke, April 2021 (the "Sherbrooke
report", ``/work/shared/papers/sherbrooke-ift780-report.txt``).

Labeling rate scheduler (report §4.4.1 "Labeling Rate", eqs. 4.1-4.2,
Algorithm 1 / Figure 4.19, p. 30-31). Round ``i`` trains on the labels so far
and reaches accuracy ``a(i)``; it then requests ``eta(i)`` new labels (the
report's η, our ``query_size`` k). With ``eta(i-1)`` the labels added between
rounds ``i-1`` and ``i``, the report estimates the gain per label (eq. 4.1)

    da/dn ≈ delta = (a(i) - a(i-1)) / eta(i-1)

and Algorithm 1 ("Labeling rate update"; input ``eta(i-1), a(i-1), a(i),
epsilon, R, g``) sets

    assert epsilon > 0 and R > 0
    delta = max(epsilon, a(i) - a(i-1)) / eta(i-1)
    gain  = min(g, 1 - a(i))
    eta(i) = ceil(min(R, gain / delta))

``epsilon`` replaces a non-positive accuracy difference (the report notes
``a`` need not increase), ``R`` is the most labels one round may request and
``g`` the accuracy gain hoped for from the next batch (``g = 1 - a(i)`` would
make ``eta`` grow past ``R``). Eq. 4.2 is the unbounded form aiming at a target
``A``: ``eta(i) = ceil((A - a(i)) / delta)``. ``delta`` is computed each round,
not a constant. The report proposes the scheduler for future work and runs no
experiment with it: **it gives no values for epsilon, R or g** (all its
experiments use a fixed eta: 100 on CIFAR-10, 1000 on EMNIST, Tables 3.4,
3.5, 3.7), so :class:`LabelingRateSettings` has no defaults for them.

Stopping (report §2.1.1-2.1.2 step 7, Tables 3.4/3.5/3.7 ``Patience P = 3``):
the loop stops after ``n_round`` rounds or when the accuracy on the *2nd*
labeled validation split has not improved for ``P`` consecutive rounds. The
authors' ``ActiveLearner`` (public code: sgiardl/ActiveLearning,
``src/models/ActiveLearning.py``) compares each round with the best accuracy
so far (a difference ``<= 0`` counts as a round without improvement, a
positive one resets the count) and stops, without querying, once the count
reaches ``P``: that is :func:`should_stop` with ``min_delta = 0``.

The report's protocol (for the study that uses this module):

- Splits (§3.3.1, p. 10): the original test split is the labeled test set; two
  stratified 20% samples of the train split are validation sets 1 (watched per
  epoch, no early stopping) and 2 (the round's accuracy: stopping, accuracy
  goals); the remaining 60% is the unlabeled pool. (The authors' code takes
  split 2 as 20% of the remaining 80%: 20 / 16 / 64%.)
- Start (§2.1.2 step 1): ``n_start`` random labels *per class*: 100
  (SqueezeNet 1.1 / CIFAR-10) and 50 (ResNet18 / EMNIST 'balanced').
- Rounds: ``E = 10`` epochs per round; fixed ``eta = 100`` (CIFAR-10) and
  1000 (EMNIST); ``n_rounds = 20`` and 10; patience ``P = 3``; batch 50; Adam,
  learning rate 1e-4 (Tables 3.4, 3.5, 3.7, pp. 12-14). The authors' code keeps
  training the same model (and Adam state) from round to round.
- Augmentation (§3.4, p. 10; torchvision ``RandomRotation(15)``,
  ``ColorJitter(contrast=0.1, hue=0.1)``, ``RandomHorizontalFlip(0.5)``):
  rotation in [-15, 15] degrees, contrast and hue changes within ±10%,
  horizontal flip with probability 0.5 (jaxal: ``train.augment.rotation=15,
  contrast=0.1, hue=0.1, flip=True``).
- L2 (Table 3.3, p. 11): generalization grid G1-G10 = {no aug, L2 0} and aug ×
  L2 ∈ {0, 0.001, 0.005, 0.008}, per model; 0.005 with augmentation in the
  pretraining and query-strategy experiments (torch Adam ``weight_decay``:
  L2 added to the gradient).
- Strategies (§2.2, §3.5.3): least confidence, margin, entropy, random.
- Datasets (Table 3.2): CIFAR-10 (10 classes) and EMNIST 'balanced' (the
  report says 62 classes and its Table 4.3 costs use 62; the 'balanced' split
  has 47 and the code loads ``split='balanced'``). Tables 3.5 and 3.7 print the
  dataset row swapped (CIFAR10 under ResNet18).
- Budgets are not stated; they follow from the above: ``n_start · C +
  n_rounds · eta`` at most (the code trains rounds 0..n_rounds).
- Cost model and accuracy goals (0.35 / 0.80 on validation set 2, Table 3.6):
  :mod:`jaxal.reporting.cost`.

Everything here is plain Python on host numbers (no JAX): deterministic, and
cheap enough to run between rounds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

# A quotient that is an integer up to float round-off (0.1 / 0.0005 =
# 200.00000000000003) is not rounded up to the next integer.
_CEIL_TOLERANCE = 1e-9


def _ceil(x: float) -> int:
    return math.ceil(x - _CEIL_TOLERANCE * max(1.0, abs(x)))


@dataclasses.dataclass(frozen=True)
class LabelingRateSettings:
    """Constants of the report's Algorithm 1 (§4.4.1); no report values exist.

    Attributes:
      epsilon: the accuracy difference used when ``a(i) - a(i-1) <= epsilon``
        (so ``delta >= epsilon / eta(i-1) > 0``); > 0.
      g: the accuracy gain to aim for with the next labels (capped at
        ``1 - a(i)``); > 0.
      R: the most labels one round may request (the report's R); >= 1.
      k0: ``eta(0)``, the labels requested after the first round (the
        report's fixed labeling rate η); >= 1.
    """

    epsilon: float
    g: float
    R: int
    k0: int

    def __post_init__(self):
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ValueError(f"epsilon={self.epsilon!r}: must be a finite number > 0")
        if not (math.isfinite(self.g) and self.g > 0):
            raise ValueError(f"g={self.g!r}: must be a finite number > 0")
        for name in ("R", "k0"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
                raise ValueError(f"{name}={v!r}: must be an integer >= 1")


def labeling_rate_update(
    eta_prev: int, a_prev: float, a_curr: float, epsilon: float, R: int, g: float
) -> int:
    """Algorithm 1 of the report, literally: ``eta(i)`` from ``eta(i-1)``,
    ``a(i-1)`` and ``a(i)``. Returns ``ceil(min(R, gain / delta))``, which is
    0 when ``a(i) == 1`` (nothing left to gain); no other bound is applied."""
    if not (epsilon > 0 and R > 0):
        raise ValueError(f"Algorithm 1 needs epsilon > 0 and R > 0, got {epsilon!r}, {R!r}")
    if eta_prev < 1:
        raise ValueError(f"eta(i-1)={eta_prev!r}: must be >= 1")
    delta = max(epsilon, a_curr - a_prev) / eta_prev
    gain = min(g, 1.0 - a_curr)
    return _ceil(min(R, gain / delta))


def next_query_size(
    accuracies: Sequence[float],
    current_k: int,
    settings: LabelingRateSettings,
    k_max: int,
) -> int:
    """The labels to request after the latest round (Algorithm 1, bounded).

    Args:
      accuracies: ``a(0), ..., a(i)``: the accuracy (the report: on the 2nd
        validation split) of every round so far, oldest first.
      current_k: ``eta(i-1)``, the labels added between rounds ``i-1`` and ``i``
        (ignored with fewer than two accuracies).
      settings: the scheduler's constants.
      k_max: the static capacity the engine allocates for one round's picks.

    Returns:
      ``eta(i)`` in ``[1, min(R, k_max)]``: ``settings.k0`` after the first
      round; Algorithm 1 afterwards. When ``a(i)`` or ``a(i-1)`` is not finite
      (a diverged round) the rate is kept (``current_k``, bounded). The
      remaining budget is the caller's to apply (``Plan.take``).
    """
    if k_max < 1:
        raise ValueError(f"k_max={k_max!r}: must be >= 1")
    hi = min(settings.R, k_max)
    clamp = lambda k: int(min(max(int(k), 1), hi))  # noqa: E731
    if len(accuracies) < 2:
        return clamp(settings.k0)
    a_prev, a_curr = float(accuracies[-2]), float(accuracies[-1])
    if not (math.isfinite(a_prev) and math.isfinite(a_curr)):
        return clamp(current_k)
    k = labeling_rate_update(
        int(current_k), a_prev, a_curr, settings.epsilon, settings.R, settings.g
    )
    return clamp(k)


def query_size_schedule(
    accuracies: Sequence[float], settings: LabelingRateSettings, k_max: int
) -> list[int]:
    """``[eta(0), ..., eta(n-1)]`` for rounds reaching ``accuracies[0..n-1]``:
    the labels requested after each round, as the engine would ask for them."""
    out: list[int] = []
    for i in range(len(accuracies)):
        prev = out[-1] if out else settings.k0
        out.append(next_query_size(accuracies[: i + 1], prev, settings, k_max))
    return out


def next_query_sizes(
    acc_prev: np.ndarray,
    acc_curr: np.ndarray,
    current_k: np.ndarray,
    settings: LabelingRateSettings,
    k_max: int,
) -> np.ndarray:
    """:func:`next_query_size` per seed: ``int32[S]`` from ``[S]`` arrays of
    ``a(i-1)``, ``a(i)`` and ``eta(i-1)`` (each seed follows its own curve)."""
    acc_prev, acc_curr, current_k = np.broadcast_arrays(
        np.asarray(acc_prev, np.float64), np.asarray(acc_curr, np.float64), np.asarray(current_k)
    )
    return np.array(
        [
            next_query_size([p, c], int(k), settings, k_max)
            for p, c, k in zip(acc_prev.ravel(), acc_curr.ravel(), current_k.ravel(), strict=True)
        ],
        np.int32,
    ).reshape(acc_curr.shape)


def rounds_without_improvement(history: Sequence[float], min_delta: float = 0.0) -> int:
    """Consecutive latest rounds whose accuracy did not beat the best before them
    by more than ``min_delta`` (a non-finite accuracy never improves)."""
    if min_delta < 0:
        raise ValueError(f"min_delta={min_delta!r}: must be >= 0")
    best, bad = -math.inf, 0
    for a in history:
        a = float(a)
        if math.isfinite(a) and a > best + min_delta:
            best, bad = a, 0
        else:
            bad += 1
    return bad


def should_stop(val2_history: Sequence[float], patience: int, min_delta: float = 0.0) -> bool:
    """The report's stopping rule (§2.1.2 step 7): stop once ``patience``
    consecutive rounds have not improved the best 2nd-validation accuracy (by
    more than ``min_delta``). ``val2_history`` holds every round so far, oldest
    first; ``True`` means: do not query or train again."""
    if isinstance(patience, bool) or not isinstance(patience, int | np.integer) or patience < 1:
        raise ValueError(f"patience={patience!r}: must be an integer >= 1")
    return rounds_without_improvement(val2_history, min_delta) >= patience
