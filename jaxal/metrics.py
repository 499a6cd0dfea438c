"""Learning-curve metrics for comparing active-learning strategies (pure numpy).

A learning curve is a pair of 1-D arrays: ``labels`` (number of labeled points,
increasing) and ``accuracy`` (test accuracy in [0, 1] at those labels). All
functions take one curve (one seed, or the mean over seeds); compute them per
seed and then take the mean ± std over seeds to get a spread.

    normalized_aulc(labels, acc)                      area / label range
    labels_to_target(labels, acc, target)             first labels reaching target
    labeling_efficiency(rnd_labels, rnd_acc, n, a)    labels random needs for a / n
    gain_over_random(rnd_labels, rnd_acc, n, a)       a - random's accuracy at n
    efficiency_curve(rnd_labels, rnd_acc, labels, acc)  the efficiency at every round
    gain_curve(rnd_labels, rnd_acc, labels, acc)        the gain at every round

Nothing here imports JAX: study scripts can use it on ``results.csv`` directly
(``jaxal.reporting.load_run`` reads a workdir into per-seed curves).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "curve",
    "efficiency_curve",
    "gain_curve",
    "gain_over_random",
    "labeling_efficiency",
    "labels_to_target",
    "normalized_aulc",
    "rank",
]


def curve(labels, accuracy) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, accuracy)`` as float arrays sorted by labels.

    Raises:
      ValueError: not 1-D, different lengths, empty, or a label repeated.
    """
    x = np.asarray(labels, dtype=np.float64)
    y = np.asarray(accuracy, dtype=np.float64)
    if x.ndim != 1 or y.shape != x.shape:
        raise ValueError(
            f"a curve is two 1-D arrays of one length; got labels {x.shape}, accuracy {y.shape}"
        )
    if x.size == 0:
        raise ValueError("a curve needs at least one point")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if np.any(np.diff(x) == 0):
        raise ValueError(f"labels repeat in the curve: {x.tolist()}")
    return x, y


def normalized_aulc(labels, accuracy) -> float:
    """Normalised area under the learning curve.

    ``sum_i (x[i+1] - x[i]) * (y[i] + y[i+1]) / 2  /  (x[-1] - x[0])``: the
    trapezoid rule over the labels axis divided by the label range, so a
    constant accuracy ``a`` gives ``a``, and the value is on the accuracy scale
    whatever the budget. A single point gives its accuracy.
    """
    x, y = curve(labels, accuracy)
    if x.size == 1:
        return float(y[0])
    area = np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0)
    return float(area / (x[-1] - x[0]))


def labels_to_target(labels, accuracy, target: float) -> float:
    """Labels at which the curve first reaches ``target`` (NaN: never).

    Linear interpolation between the two points around the first crossing:
    with ``i`` the first point where ``y[i] >= target`` and ``i > 0``,
    ``x[i-1] + (target - y[i-1]) / (y[i] - y[i-1]) * (x[i] - x[i-1])``;
    ``x[0]`` when the first point already reaches it; NaN when no point does.
    """
    x, y = curve(labels, accuracy)
    hit = np.nonzero(y >= target)[0]
    if hit.size == 0:
        return float("nan")
    i = int(hit[0])
    if i == 0:
        return float(x[0])
    frac = (target - y[i - 1]) / (y[i] - y[i - 1])  # y[i-1] < target <= y[i]
    return float(x[i - 1] + frac * (x[i] - x[i - 1]))


def labeling_efficiency(random_labels, random_accuracy, labels: float, accuracy: float) -> float:
    """How many times fewer labels than random a strategy needed for its accuracy.

    ``labels_to_target(random curve, accuracy) / labels``: the labels random
    needs to first reach the strategy's ``accuracy`` (linear interpolation on
    random's curve) divided by the ``labels`` the strategy used. > 1: the
    strategy is more label-efficient. NaN when random's curve never reaches
    ``accuracy`` (the efficiency is then more than ``random_labels[-1] / labels``,
    but by how much is unknown).
    """
    needed = labels_to_target(random_labels, random_accuracy, accuracy)
    return float(needed / float(labels))


def gain_over_random(random_labels, random_accuracy, labels: float, accuracy: float) -> float:
    """``accuracy`` minus random's accuracy at the same number of ``labels``.

    Random's accuracy is linearly interpolated on its curve; NaN when
    ``labels`` lies outside random's label range.
    """
    x, y = curve(random_labels, random_accuracy)
    if not x[0] <= labels <= x[-1]:
        return float("nan")
    return float(accuracy - np.interp(labels, x, y))


def efficiency_curve(
    random_labels, random_accuracy, labels, accuracy, *, beyond: str = "nan"
) -> np.ndarray:
    """:func:`labeling_efficiency` of every point of a strategy's curve.

    The feature-space paper's (``/work/shared/papers/feature-space-architectures.txt``)
    first metric, §3.1 "Evaluation metrics", after Beck et al. 2021: at each
    round, the labels random acquisition needs to reach the strategy's test
    accuracy (linear interpolation on random's curve, first crossing) divided
    by the labels the strategy used. E.g. random ``(100, 0.5), (200, 0.6),
    (300, 0.7)`` and a strategy at ``(200, 0.65)``: random needs 250,
    efficiency 1.25.

    Args:
      beyond: where random's curve never reaches the accuracy: ``"nan"``, or
        ``"bound"`` = the lower bound ``random_labels[-1] / labels`` (random
        needs more than all its labels).

    Returns:
      ``[len(labels)]`` floats, sorted by labels.
    """
    if beyond not in ("nan", "bound"):
        raise ValueError(f"beyond={beyond!r}; allowed: 'nan', 'bound'")
    x, y = curve(labels, accuracy)
    rx, _ = curve(random_labels, random_accuracy)
    out = []
    for n, a in zip(x, y, strict=True):
        e = labeling_efficiency(random_labels, random_accuracy, n, a)
        out.append(rx[-1] / n if np.isnan(e) and beyond == "bound" else e)
    return np.array(out)


def gain_curve(random_labels, random_accuracy, labels, accuracy) -> np.ndarray:
    """:func:`gain_over_random` of every point of a strategy's curve.

    The feature-space paper's second metric (§3.1: "the percentage of gain in
    test-accuracy over random acquisition at each acquisition round"; its
    Figs. 3, 5, 7 plot it with random at 0.00): the strategy's accuracy minus
    random's at the same labels (interpolated), as a fraction -- x 100 for
    percentage points. ``[len(labels)]`` floats, sorted by labels; NaN outside
    random's label range.
    """
    x, y = curve(labels, accuracy)
    pts = zip(x, y, strict=True)
    return np.array([gain_over_random(random_labels, random_accuracy, n, a) for n, a in pts])


def rank(values, higher_is_better: bool = True) -> np.ndarray:
    """Competition ranks ("1224"): 1 = best, ties share the better rank, NaN last.

    E.g. ``rank([0.9, 0.7, 0.9, nan]) == [1, 3, 1, 4]``.
    """
    v = np.asarray(values, dtype=np.float64)
    key = np.where(np.isnan(v), np.inf, -v if higher_is_better else v)
    return np.array([1 + int(np.sum(key < k)) for k in key], dtype=np.int64)
