"""Training on the labeled set: optimizer from config, pure steps, one jitted fit.

``make_fit`` returns ``fit(variables, order, num_labeled, key, data)`` that runs
every epoch of one round inside a single jitted program. The labeled set enters
as a fixed-capacity index buffer ``order[capacity]`` (pool indices, ``-1``
padded) plus the traced count ``num_labeled``, so the same executable serves
every round: nothing recompiles as the labeled set grows.

Epoch semantics are exact: each epoch is a fresh permutation of the labeled
points cut into ``ceil(n / B)`` batches: ``n // B`` full batches of static size
``B``, then -- when ``B`` does not divide ``n`` -- one last batch of the ``r = n %
B`` remaining points, run in the smallest static *bucket* shape that holds them
(:func:`batch_buckets`: 8, 16, 32, ... below ``B``, and ``B``;
``train.batch_buckets = False``: always ``B``). The bucket is filled up with
earlier points of the same permutation whose loss weight is 0, so every example
is seen exactly once per epoch and the gradient equals that of a true partial
batch (batch-norm statistics do see the filler examples). With 20 labels and
``B = 64`` an epoch is one step of 32, not of 64 with 44 weight-0 repeats. A
lane's bucket depends only on its own ``n``, so every execution path computes
the same batches; each bucket compiles once (the device step loop's round
program once per set of buckets the lanes need, see :func:`last_batch_sizes`),
so compiles stay bounded and never grow with rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxal import interrupt
from jaxal.models.base import Model
from jaxal.models.outputs import training_logits
from jaxal.parallel import to_host
from jaxal.predict import map_chunks
from jaxal.settings import TrainSettings

Array = jax.Array

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine")
HYPERPARAMETERS = ("learning_rate", "weight_decay", "momentum")  # injected, per lane


class Data(NamedTuple):
    """Device arrays of one dataset; passed as arguments (never baked into programs)."""

    x_pool: Array  # [N, ...]
    y_pool: Array  # [N]
    x_test: Array
    y_test: Array
    x_val: Array  # [0, ...] when there is no validation split
    y_val: Array
    x_val2: Array | None = None  # the second validation split (dataset.val2_size)
    y_val2: Array | None = None
    # train.init_from: the variables every round starts from instead of model.init
    # (jaxal.pretrain), shared by every seed like the pool; None: model.init.
    init_variables: Any = None


class FitMetrics(NamedTuple):
    epochs: Array  # epochs actually run (early stopping may end sooner)
    steps: Array
    train_loss: Array  # mean loss of the last epoch
    train_accuracy: Array  # accuracy of the last epoch
    val_accuracy: Array  # best validation accuracy (nan without a validation split)
    diverged: Array  # bool: a training loss was NaN or inf (training stopped there)


def make_optimizer(cfg, grid=()) -> optax.GradientTransformation:
    """An optax optimizer whose numeric hyperparameters are injected state.

    ``learning_rate``, ``weight_decay`` and ``momentum`` live in the optimizer
    state (``optax.inject_hyperparams``), so one compiled program serves any
    values: each lane of a run (a grid setting x seed, :mod:`jaxal.grid`) sets
    its own at the start of a round, and the step sets the scheduled rate.

    Args:
      cfg: :class:`~jaxal.settings.TrainSettings` (or a ``train`` config block):
        ``optimizer`` in ``OPTIMIZERS``, ``learning_rate``, ``momentum`` (sgd),
        ``weight_decay`` (decoupled for adamw, L2-style ``add_decayed_weights``
        for sgd/adam).
      grid: the run's grid settings; the transform's structure (a momentum
        trace, a weight-decay term) is there if any setting or ``cfg`` needs it.
        A setting whose value is 0 then adds exactly 0, so it computes what a
        run without the term computes.
    """
    cfg = TrainSettings.of(cfg)
    values = [dict(s) for s in grid]
    use_momentum = bool(cfg.momentum) or any(v.get("momentum") for v in values)
    use_decay = bool(cfg.weight_decay) or any(v.get("weight_decay") for v in values)

    def factory(learning_rate, weight_decay, momentum):
        if cfg.optimizer == "sgd":
            opt = optax.sgd(learning_rate, momentum=momentum if use_momentum else None)
        elif cfg.optimizer == "adam":
            opt = optax.adam(learning_rate)
        elif cfg.optimizer == "adamw":
            return optax.adamw(learning_rate, weight_decay=weight_decay)
        else:
            raise ValueError(f"train.optimizer={cfg.optimizer!r}; allowed: {OPTIMIZERS}")
        if use_decay:
            opt = optax.chain(optax.add_decayed_weights(weight_decay), opt)
        return opt

    return optax.inject_hyperparams(factory)(
        learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, momentum=cfg.momentum
    )


def default_hyperparameters(cfg) -> dict[str, Array]:
    """``{learning_rate, weight_decay, momentum}`` of ``cfg`` as float32 scalars."""
    cfg = TrainSettings.of(cfg)
    return {k: jnp.float32(getattr(cfg, k)) for k in HYPERPARAMETERS}


def learning_rate(cfg, step: Array, total_steps: Array, base: Array | None = None) -> Array:
    """The scheduled rate at ``step`` of a round of ``total_steps`` (both traced).

    ``base`` is the peak rate (default ``cfg.learning_rate``; a grid lane's own).
    With ``train.warmup_epochs = W > 0`` the first ``W / epochs`` of the round's
    steps ramp linearly from ``warmup_start * base`` to ``base`` (per step), and
    the schedule (constant or cosine to 0) runs over the remaining steps: the
    cosine-with-linear-warm-up of Huseljic et al. (2023), Sec. 3 via their code
    (``CosineAnnealingLRLinearWarmup``: LinearLR from 0.01, then cosine). Their
    code changes the rate once per epoch; here it changes every step.
    """
    cfg = TrainSettings.of(cfg)
    base = jnp.asarray(cfg.learning_rate, jnp.float32) if base is None else base
    if cfg.schedule not in SCHEDULES:
        raise ValueError(f"train.schedule={cfg.schedule!r}; allowed: {SCHEDULES}")
    total = jnp.maximum(total_steps, 1).astype(jnp.float32)
    t = step.astype(jnp.float32)
    if cfg.warmup_epochs:
        warm = jnp.floor(total * (cfg.warmup_epochs / cfg.epochs))
        ramp = cfg.warmup_start + (1.0 - cfg.warmup_start) * t / jnp.maximum(warm, 1.0)
        if cfg.schedule == "constant":
            return jnp.where(t < warm, base * ramp, base)
        frac = (t - warm) / jnp.maximum(total - warm, 1.0)
        return jnp.where(t < warm, base * ramp, base * 0.5 * (1.0 + jnp.cos(jnp.pi * frac)))
    if cfg.schedule == "constant":
        return base
    return base * 0.5 * (1.0 + jnp.cos(jnp.pi * t / total))


# Keys of the optional augmentations: folded into the batch's augmentation key
# with tags far from the small counters `split` uses (fold_in(k, 1) is
# split(k)[1], the flip key), so turning one on changes no other draw.
_ROTATION_TAG, _CONTRAST_TAG, _HUE_TAG = 0x524F54, 0x434F4E, 0x485545  # "ROT", "CON", "HUE"
_BRIGHTNESS_TAG = 0x425249  # "BRI"
# ITU-R 601 luma, as torchvision's rgb_to_grayscale (the mean that contrast keeps).
_LUMA = (0.2989, 0.587, 0.114)
# Hue rotation in YIQ (NTSC): rotate the (I, Q) chroma plane by theta about the
# luma axis. M(theta) = YIQ^-1 diag(1, R(theta)) YIQ, written as
# I + (cos theta - 1) A + sin theta B so that theta = 0 is exactly the identity.
_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
_HUE_A = np.linalg.inv(_YIQ) @ np.diag([0.0, 1.0, 1.0]) @ _YIQ
_HUE_B = np.linalg.inv(_YIQ) @ np.array([[0.0, 0, 0], [0, 0, -1], [0, 1, 0]]) @ _YIQ


def rotate(x: Array, degrees: Array) -> Array:
    """Rotate each image of ``x [B, H, W, C]`` counter-clockwise by ``degrees [B]``
    about its centre: bilinear, zero outside the source, same shape and dtype
    (90 degrees of a square image is ``np.rot90`` up to float round-off)."""
    _, h, w, _ = x.shape
    ci, cj = (h - 1) / 2.0, (w - 1) / 2.0
    ii, jj = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32), indexing="ij"
    )
    right, up = jj - cj, ci - ii  # output pixel in centred, y-up coordinates

    def one(img, theta):
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        src_i = ci - (-right * sin + up * cos)  # the source point: rotated by -theta
        src_j = cj + (right * cos + up * sin)
        sample = lambda ch: jax.scipy.ndimage.map_coordinates(  # noqa: E731
            ch, [src_i, src_j], order=1, mode="constant", cval=0.0
        )
        return jax.vmap(sample, in_axes=2, out_axes=2)(img)

    theta = jnp.deg2rad(jnp.asarray(degrees, jnp.float32))
    return jax.vmap(one)(x.astype(jnp.float32), theta).astype(x.dtype)


def adjust_contrast(x: Array, factor: Array) -> Array:
    """``factor * x + (1 - factor) * mean`` per image of ``x [B, H, W, C]``, with
    ``mean`` the image's mean luma (3 channels) or mean value (otherwise), as
    torchvision's ``adjust_contrast`` but without clipping to [0, 1] (inputs may
    be standardised)."""
    if x.shape[3] == 3:
        mean = jnp.einsum("bhwc,c->b", x, jnp.asarray(_LUMA, x.dtype)) / (x.shape[1] * x.shape[2])
    else:
        mean = jnp.mean(x, axis=(1, 2, 3))
    f = jnp.asarray(factor, x.dtype)[:, None, None, None]
    return f * x + (1 - f) * mean[:, None, None, None]


def adjust_brightness(x: Array, shift: Array) -> Array:
    """``x + shift`` per image of ``x [B, H, W, C]`` (``shift [B]``, the same for
    every pixel and channel), without clipping: the brightness half of
    albumentations' ``RandomBrightnessContrast`` (``brightness_by_max=True``:
    ``beta * max_value``, here with the input's own scale, so on ``[0, 1]`` images
    a shift of ``beta`` is exactly theirs; on standardised inputs it is in units
    of the pool's per-channel std)."""
    return x + jnp.asarray(shift, x.dtype)[:, None, None, None]


def rotate_hue(x: Array, turns: Array) -> Array:
    """Shift the hue of RGB images ``x [B, H, W, 3]`` by ``turns [B]`` of the
    colour circle (0.1 = 36 degrees): a rotation of the YIQ chroma plane about
    the luma axis (linear, so fine on standardised inputs; it approximates the
    HSV hue shift of torchvision's ``adjust_hue``). ``turns = 0`` returns ``x``
    exactly. Other channel counts are returned unchanged."""
    if x.shape[3] != 3:
        return x
    theta = 2 * jnp.pi * jnp.asarray(turns, jnp.float32)
    a, b = jnp.asarray(_HUE_A, jnp.float32), jnp.asarray(_HUE_B, jnp.float32)
    delta = (jnp.cos(theta) - 1)[:, None, None] * a + jnp.sin(theta)[:, None, None] * b
    return x + jnp.einsum("bhwc,bdc->bhwd", x, delta.astype(x.dtype))


def augment(
    key: Array,
    x: Array,
    crop_padding: int,
    flip: bool,
    *,
    rotation: float = 0.0,
    contrast: float = 0.0,
    hue: float = 0.0,
    brightness: float = 0.0,
) -> Array:
    """On-device augmentation of a batch ``x [B, H, W, C]``, each image drawing
    its own: a rotation by U[-rotation, rotation] degrees (:func:`rotate`), a
    contrast factor U[max(0, 1 - contrast), 1 + contrast]
    (:func:`adjust_contrast`), a brightness shift by U[-brightness, brightness]
    (:func:`adjust_brightness`), a hue shift by U[-hue, hue] turns on RGB images
    (:func:`rotate_hue`), then a random crop (zero padding ``crop_padding``)
    and a horizontal flip (probability 0.5). A value of 0 / False turns an
    augmentation off; with all off, ``x`` is returned. Inputs that are not
    ``[B, H, W, C]`` are returned as they are. Each optional augmentation draws
    from ``fold_in(key, TAG)`` with its own large tag, so turning one on or off
    changes no other draw."""
    if x.ndim != 4 or not (crop_padding or flip or rotation or contrast or hue or brightness):
        return x
    b, h, w, _ = x.shape
    if rotation:
        k = jax.random.fold_in(key, _ROTATION_TAG)
        x = rotate(x, jax.random.uniform(k, (b,), minval=-rotation, maxval=rotation))
    if contrast:
        k = jax.random.fold_in(key, _CONTRAST_TAG)
        lo, hi = max(0.0, 1.0 - contrast), 1.0 + contrast
        x = adjust_contrast(x, jax.random.uniform(k, (b,), minval=lo, maxval=hi))
    if brightness:
        k = jax.random.fold_in(key, _BRIGHTNESS_TAG)
        x = adjust_brightness(
            x, jax.random.uniform(k, (b,), minval=-brightness, maxval=brightness)
        )
    if hue and x.shape[3] == 3:
        k = jax.random.fold_in(key, _HUE_TAG)
        x = rotate_hue(x, jax.random.uniform(k, (b,), minval=-hue, maxval=hue))
    k_crop, k_flip = jax.random.split(key)
    if crop_padding:
        p = crop_padding
        padded = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
        off = jax.random.randint(k_crop, (b, 2), 0, 2 * p + 1)
        x = jax.vmap(
            lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, x.shape[3]))
        )(padded, off)
    if flip:
        do = jax.random.bernoulli(k_flip, 0.5, (b,))
        x = jnp.where(do[:, None, None, None], x[:, :, ::-1, :], x)
    return x


def epoch_permutation(key: Array, order: Array, num_labeled: Array) -> Array:
    """A uniform permutation of the ``num_labeled`` valid entries of ``order``.

    Returns ``int32[capacity]`` whose first ``num_labeled`` entries are the labeled
    pool indices in random order (the rest is padding).
    """
    capacity = order.shape[0]
    u = jax.random.uniform(key, (capacity,))
    u = jnp.where(jnp.arange(capacity) < num_labeled, u, 2.0)
    return order[jnp.argsort(u)]


def batch_indices(
    perm: Array, num_labeled: Array, step: Array, batch_size: int, size: int | None = None
):
    """Pool indices and loss weights of batch ``step`` of an epoch.

    Batches are consecutive slices of ``perm`` of ``batch_size`` points, taken in
    a static shape of ``size`` (default ``batch_size``; a bucket for the last,
    partial batch); the last one is filled up with the epoch's first examples
    again, at weight 0, so shapes stay static.
    """
    pos = step * batch_size + jnp.arange(batch_size if size is None else size)
    weight = (pos < num_labeled).astype(jnp.float32)
    return perm[pos % jnp.maximum(num_labeled, 1)], weight


def batch_buckets(batch_size: int, enabled: bool = True) -> tuple[int, ...]:
    """The static shapes an epoch's last, partial batch may take: the powers of
    two from 8 below ``batch_size``, then ``batch_size`` (``(batch_size,)`` when
    not ``enabled``: every batch has the full shape)."""
    sizes, b = [], 8
    while enabled and b < batch_size:
        sizes.append(b)
        b *= 2
    return (*sizes, batch_size)


def bucket_of(remainder, buckets: tuple[int, ...]):
    """Index in ``buckets`` of the smallest bucket holding ``remainder`` points
    (numpy or traced; ``remainder`` in ``1..buckets[-1]``)."""
    xp = np if isinstance(remainder, np.ndarray | int | np.integer) else jnp
    return xp.searchsorted(xp.asarray(buckets), remainder, side="left")


def last_batch_sizes(num_labeled, batch_size: int, buckets: tuple[int, ...]) -> tuple[int, ...]:
    """The bucket sizes the lanes' last batches need this round (host numpy):
    one per distinct bucket among lanes whose ``num_labeled`` ``B`` does not
    divide; ``()`` when every lane's epoch is whole batches."""
    r = np.asarray(num_labeled).reshape(-1) % batch_size
    r = r[r > 0]
    return tuple(sorted({buckets[int(i)] for i in bucket_of(r, buckets)}))


def _merge(params, batch_stats) -> dict:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def make_evaluate(model: Model, batch_size: int) -> Callable:
    """``evaluate(variables, x, y) -> (accuracy, nll)`` over a whole split, chunked."""

    def evaluate(variables, x: Array, y: Array):
        if x is None or x.shape[0] == 0:
            return jnp.float32(jnp.nan), jnp.float32(jnp.nan)
        logits = map_chunks(lambda xb, _: model.apply(variables, xb, train=False)[0], x, batch_size)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        acc = (logits.argmax(-1) == y).mean()
        return acc.astype(jnp.float32), nll.astype(jnp.float32)

    return evaluate


class FitCarry(NamedTuple):
    """Training state of one seed within a round (fixed shapes)."""

    epoch: Array  # epochs completed
    step: Array  # optimizer steps taken
    params: Any
    batch_stats: Any
    opt_state: Any
    perm: Array  # int32[capacity]: this epoch's permutation of the labeled set
    correct: Array  # running sums over the current epoch
    loss_sum: Array
    train_loss: Array  # of the last completed epoch
    train_accuracy: Array
    best_accuracy: Array  # validation early stopping: best so far and its weights
    best_params: Any
    best_batch_stats: Any
    bad_epochs: Array
    stop: Array  # bool: training of this seed is over
    finite: Array  # bool: every training loss so far was finite
    hparams: Any  # {learning_rate, weight_decay, momentum}: this lane's injected values


class FitParts(NamedTuple):
    """``fit`` cut at epoch and step boundaries, so the step loop can run on
    device (``lax.while_loop``) or on the host (a Python loop of jitted steps).

    All parts are pure per-seed functions; ``ctx = (order, num_labeled, key, data)``.
    """

    start: Callable  # (variables, *ctx, hparams=None) -> FitCarry
    begin_epoch: Callable  # (carry, *ctx) -> FitCarry
    step: Callable  # (carry, i, *ctx) -> FitCarry: full batch i < n // B
    end_epoch: Callable  # (carry, *ctx) -> FitCarry
    finish: Callable  # (carry) -> (variables, FitMetrics)
    # The epoch's last, partial batch, one step per bucket size (batch_buckets):
    # ((size, (carry, i, *ctx) -> FitCarry), ...), for lanes whose remainder n % B
    # falls in that bucket (i is ignored: the batch is n // B); in_bucket() makes
    # one that leaves the other lanes as they are.
    last: tuple = ()

    def map(self, f: Callable) -> FitParts:
        """Every part, the last-batch steps included, through ``f``."""
        return FitParts(
            f(self.start), f(self.begin_epoch), f(self.step), f(self.end_epoch),
            f(self.finish), tuple((b, f(fn)) for b, fn in self.last),
        )

    @property
    def buckets(self) -> tuple[int, ...]:
        return tuple(b for b, _ in self.last)


def make_fit_parts(model: Model, cfg, eval_batch_size: int = 512, grid=()) -> FitParts:
    """The pieces of one round's training; see :func:`make_fit`."""
    cfg = TrainSettings.of(cfg)
    tx = make_optimizer(cfg, grid)
    bsz = cfg.batch_size
    epochs = cfg.epochs
    evaluate = make_evaluate(model, eval_batch_size)
    acc_stop = cfg.early_stop_accuracy
    patience = cfg.patience
    crop, flip = cfg.crop_padding, cfg.flip
    more_aug = dict(
        rotation=cfg.rotation, contrast=cfg.contrast, hue=cfg.hue, brightness=cfg.brightness
    )

    def loss_fn(params, batch_stats, x, y, w, dropout_key):
        member_logits, logits, new_bs = training_logits(
            model, _merge(params, batch_stats), x, dropout_key
        )
        # Each ensemble member minimises its own cross-entropy (the sum's
        # gradient w.r.t. member m is member m's gradient); the reported loss
        # and accuracy are those of `logits` (an ensemble's mean prediction).
        member_ce = optax.softmax_cross_entropy_with_integer_labels(
            member_logits, jnp.broadcast_to(y, member_logits.shape[:2])
        )
        objective = member_ce.sum(axis=0)
        ce = member_ce[0] if member_logits.shape[0] == 1 else (
            optax.softmax_cross_entropy_with_integer_labels(logits, y)
        )
        loss = jnp.sum(w * objective) / jnp.maximum(jnp.sum(w), 1.0)
        correct = jnp.sum(w * (logits.argmax(-1) == y))
        return loss, (new_bs, correct, jnp.sum(w * ce))

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def steps_per_epoch(n):
        return (n + bsz - 1) // bsz

    def start(variables, order, n, key, data, hparams=None) -> FitCarry:
        del key, data
        params = variables["params"]
        batch_stats = variables.get("batch_stats", {})
        zero = jnp.float32(0)
        hparams = default_hyperparameters(cfg) if hparams is None else hparams
        opt_state = tx.init(params)
        for k in HYPERPARAMETERS:  # this lane's values (the rate is set every step)
            opt_state.hyperparams[k] = jnp.asarray(hparams[k], jnp.float32)
        return FitCarry(
            epoch=jnp.int32(0),
            step=jnp.int32(0),
            params=params,
            batch_stats=batch_stats,
            opt_state=opt_state,
            perm=order,
            correct=zero,
            loss_sum=zero,
            train_loss=jnp.float32(jnp.nan),
            train_accuracy=jnp.float32(jnp.nan),
            best_accuracy=jnp.float32(-1.0),
            best_params=params,
            best_batch_stats=batch_stats,
            bad_epochs=jnp.int32(0),
            stop=jnp.bool_(False),
            finite=jnp.bool_(True),
            hparams={k: jnp.asarray(hparams[k], jnp.float32) for k in HYPERPARAMETERS},
        )

    def begin_epoch(c: FitCarry, order, n, key, data) -> FitCarry:
        del data
        k_epoch = jax.random.fold_in(key, c.epoch)
        perm = epoch_permutation(jax.random.fold_in(k_epoch, 0), order, n)
        return c._replace(perm=perm, correct=jnp.float32(0), loss_sum=jnp.float32(0))

    def sized_step(size: int, last: bool) -> Callable:
        def step(c: FitCarry, i, order, n, key, data) -> FitCarry:
            del order
            if last:
                i = n // bsz
            idx, w = batch_indices(c.perm, n, i, bsz, size)
            return _step(c, i, idx, w, n, key, data)

        return step

    def _step(c: FitCarry, i, idx, w, n, key, data) -> FitCarry:
        k_aug, k_drop = jax.random.split(
            jax.random.fold_in(jax.random.fold_in(key, c.epoch), i + 1)
        )
        x = augment(k_aug, data.x_pool[idx], crop, flip, **more_aug)
        (loss, (new_bs, corr, lsum)), grads = grad_fn(
            c.params, c.batch_stats, x, data.y_pool[idx], w, k_drop
        )
        opt_state = c.opt_state
        opt_state.hyperparams["learning_rate"] = learning_rate(
            cfg, c.step, steps_per_epoch(n) * epochs, c.hparams["learning_rate"]
        )
        updates, opt_state = tx.update(grads, opt_state, c.params)
        return c._replace(
            step=c.step + 1,
            params=optax.apply_updates(c.params, updates),
            batch_stats=new_bs,
            opt_state=opt_state,
            correct=c.correct + corr,
            loss_sum=c.loss_sum + lsum,
            finite=c.finite & jnp.isfinite(loss),
        )

    def end_epoch(c: FitCarry, order, n, key, data) -> FitCarry:
        del order, key
        nf = jnp.maximum(n, 1).astype(jnp.float32)
        c = c._replace(epoch=c.epoch + 1, train_accuracy=c.correct / nf, train_loss=c.loss_sum / nf)
        stop = (c.epoch >= epochs) | ~c.finite  # a diverged seed stops training
        if acc_stop is not None:
            stop = stop | (c.train_accuracy >= acc_stop)
        if patience is not None:
            val_acc, _ = evaluate(_merge(c.params, c.batch_stats), data.x_val, data.y_val)
            better = val_acc > c.best_accuracy
            pick = lambda new, old: jax.tree.map(lambda a, b: jnp.where(better, a, b), new, old)  # noqa: E731
            c = c._replace(
                best_accuracy=jnp.where(better, val_acc, c.best_accuracy),
                best_params=pick(c.params, c.best_params),
                best_batch_stats=pick(c.batch_stats, c.best_batch_stats),
                bad_epochs=jnp.where(better, 0, c.bad_epochs + 1),
            )
            stop = stop | (c.bad_epochs >= patience)
        return c._replace(stop=stop)

    def finish(c: FitCarry):
        params, batch_stats, val_acc = c.params, c.batch_stats, jnp.float32(jnp.nan)
        if patience is not None:  # keep the weights of the best validation epoch
            params, batch_stats, val_acc = c.best_params, c.best_batch_stats, c.best_accuracy
        metrics = FitMetrics(
            c.epoch, c.step, c.train_loss, c.train_accuracy, val_acc, ~c.finite
        )
        return _merge(params, batch_stats), metrics

    buckets = batch_buckets(bsz, cfg.batch_buckets)
    last = tuple((b, sized_step(b, last=True)) for b in buckets)
    return FitParts(start, begin_epoch, sized_step(bsz, last=False), end_epoch, finish, last)


def make_fit(model: Model, cfg, eval_batch_size: int = 512, grid=()) -> Callable:
    """Build the per-seed, per-round training function (every epoch on device).

    Args:
      model: the model adapter.
      cfg: :class:`~jaxal.settings.TrainSettings` (or a ``train`` config block).
      eval_batch_size: chunk size for validation passes.
      grid: the run's grid settings (:mod:`jaxal.grid`), for the optimizer's structure.

    Returns:
      ``fit(variables, order, num_labeled, key, data, hparams=None, last_sizes=None)
      -> (variables, FitMetrics)``; pure and jit/vmap-able. ``order`` is the
      ``int32[capacity]`` labeled-index buffer (capacity = the run's budget);
      ``hparams`` the lane's injected ``{learning_rate, weight_decay, momentum}``
      (default: ``cfg``'s). ``last_sizes`` (static): the bucket sizes of the last
      batch the lanes need (:func:`last_batch_sizes`; ``None``: every bucket,
      one ``lax.cond`` each -- right for any lane, and under ``vmap`` each is run
      for every lane, so callers that know the labeled-set sizes pass them).
    """
    parts = make_fit_parts(model, cfg, eval_batch_size, grid)
    bsz = TrainSettings.of(cfg).batch_size

    def fit(
        variables, order: Array, num_labeled: Array, key: Array, data: Data, hparams=None,
        last_sizes=None,
    ):
        ctx = (order, num_labeled.astype(jnp.int32), key, data)
        epoch = _device_epoch(parts, bsz, ctx, last_sizes)
        c = jax.lax.while_loop(lambda c: ~c.stop, epoch, parts.start(variables, *ctx, hparams))
        return parts.finish(c)

    return fit


def _last_steps(parts: FitParts, last_sizes) -> list[tuple[int, Callable]]:
    """``(size, step)`` of ``parts``' last-batch steps for the bucket sizes
    ``last_sizes`` (``None``: all of them)."""
    wanted = parts.buckets if last_sizes is None else tuple(last_sizes)
    unknown = set(wanted) - set(parts.buckets)
    if unknown:
        raise ValueError(f"last batch sizes {sorted(unknown)} are not buckets {parts.buckets}")
    return [(b, fn) for b, fn in parts.last if b in wanted]


def _device_epoch(parts: FitParts, bsz: int, ctx: tuple, last_sizes=None) -> Callable:
    """One epoch of the device step loop: ``begin_epoch``, the ``n // B`` full
    batches in a ``fori_loop``, the last partial batch in its bucket, ``end_epoch``
    (the body of :func:`make_fit`'s and :func:`make_fit_chunks`' epoch
    ``while_loop``)."""
    n_full = ctx[1] // bsz
    last = [in_bucket(f, b, bsz, parts.buckets) for b, f in _last_steps(parts, last_sizes)]

    def epoch(c: FitCarry) -> FitCarry:
        c = parts.begin_epoch(c, *ctx)
        c = jax.lax.fori_loop(0, n_full, lambda i, c: parts.step(c, i, *ctx), c)
        for step in last:
            c = step(c, n_full, *ctx)
        return parts.end_epoch(c, *ctx)

    return epoch


class FitChunks(NamedTuple):
    """One round's training cut at epoch boundaries, so a long round can be
    checkpointed inside (``checkpoint.every_epochs`` / ``every_minutes``).

    ``run_until(carry, until, *ctx)`` runs epochs while the seed trains and its
    epoch count is below ``until`` (a traced scalar under the device step loop:
    one compiled program serves every chunk, so chunk boundaries and a resume
    from a saved carry never change the arithmetic).
    """

    start: Callable  # (variables, order, num_labeled, key, data, hparams) -> FitCarry
    # (carry, until, order, num_labeled, key, data, last_sizes=None) -> FitCarry
    run_until: Callable
    finish: Callable  # (carry) -> (variables, FitMetrics)


def make_fit_chunks(model: Model, cfg, eval_batch_size: int = 512, grid=()) -> FitChunks:
    """:func:`make_fit` as start / run epochs until / finish (device step loop)."""
    parts = make_fit_parts(model, cfg, eval_batch_size, grid)
    bsz = TrainSettings.of(cfg).batch_size

    def start(variables, order, num_labeled, key, data, hparams=None):
        return parts.start(variables, order, num_labeled.astype(jnp.int32), key, data, hparams)

    def run_until(c: FitCarry, until, order, num_labeled, key, data, last_sizes=None):
        ctx = (order, num_labeled.astype(jnp.int32), key, data)
        epoch = _device_epoch(parts, bsz, ctx, last_sizes)
        return jax.lax.while_loop(lambda c: ~c.stop & (c.epoch < until), epoch, c)

    return FitChunks(start, run_until, parts.finish)


def host_fit_chunks(
    parts: FitParts, batch_size: int, guarded: FitParts | None = None
) -> FitChunks:
    """:func:`host_fit` as start / run epochs until / finish: a Python loop of
    the jitted ``parts``, stopped at an epoch boundary (``until=None``: when
    every seed has stopped).

    When the lanes of a vmapped group have labeled sets of different sizes, a
    full batch past some lane's ``n // B`` or a last batch in another lane's
    bucket runs ``guarded``'s step instead (:func:`full_batches`,
    :func:`in_bucket`: it leaves those lanes' carries as they are), so a lane
    trains in a group as alone; when they agree -- always for one lane -- the
    plain step runs.
    """

    def run_until(c: FitCarry, until, order, num_labeled, key, data, last_sizes=None):
        del last_sizes  # read from num_labeled here
        ctx = (order, num_labeled, key, data)
        n = np.atleast_1d(to_host(num_labeled))
        full, r = n // batch_size, n % batch_size
        sizes = last_batch_sizes(n, batch_size, parts.buckets)
        uniform_last = len(sizes) == 1 and bool(np.all(r > 0))
        if guarded is None and (np.any(full != full.max()) or (sizes and not uniform_last)):
            raise ValueError("lanes with labeled sets of different sizes need guarded steps")
        steps = [
            parts.step if bool(np.all(full > i)) else guarded.step for i in range(int(full.max()))
        ]
        last_parts = parts if uniform_last else guarded
        last = [f for _, f in _last_steps(last_parts, sizes)] if sizes else []

        def done():
            stop = to_host(c.stop)
            return stop if until is None else stop | (to_host(c.epoch) >= int(until))

        while not bool(np.all(done())):
            c = parts.begin_epoch(c, *ctx)
            for i, step in enumerate(steps):
                interrupt.check()  # SIGTERM / Ctrl-C: abandon the round here
                c = step(c, jnp.int32(i), *ctx)
            for step in last:
                interrupt.check()
                c = step(c, jnp.int32(len(steps)), *ctx)
            c = parts.end_epoch(c, *ctx)
        return c

    return FitChunks(parts.start, run_until, parts.finish)


def host_fit(parts: FitParts, batch_size: int, guarded: FitParts | None = None) -> Callable:
    """``fit`` with the epoch and step loops in Python around jitted ``parts``.

    On XLA:CPU a convolution's gradient inside ``lax.while_loop``/``fori_loop``
    runs ~30× slower than the same step jitted on its own (measured here on the
    small CNN: 2.8 s vs 0.096 s per step), so conv nets on CPU train with the
    step loop on the host. ``parts`` may be per-seed or vmapped over seeds;
    seeds whose training has stopped keep their state (``step`` is masked).
    Same keys and arithmetic as :func:`make_fit`. Wrap ``begin_epoch``, ``step``
    and ``end_epoch`` in :func:`masked` before vmapping them over seeds, and pass
    ``guarded`` (:func:`guarded_steps`) when their labeled sets may differ.
    """
    pieces = host_fit_chunks(parts, batch_size, guarded)

    def fit(variables, order, num_labeled, key, data, hparams=None):
        ctx = (order, num_labeled, key, data)
        c = pieces.start(variables, *ctx, hparams)
        return pieces.finish(pieces.run_until(c, None, *ctx))

    return fit


def guarded_steps(parts: FitParts, batch_size: int) -> FitParts:
    """``parts`` with the steps that leave lanes outside their batch as they are
    (:func:`full_batches`, :func:`in_bucket`), for :func:`host_fit`'s ``guarded``."""
    return parts._replace(
        step=full_batches(parts.step, batch_size),
        last=tuple((b, in_bucket(f, b, batch_size, parts.buckets)) for b, f in parts.last),
    )


def in_bucket(step: Callable, size: int, batch_size: int, buckets: tuple[int, ...]) -> Callable:
    """A last-batch step of bucket ``size`` that leaves the carry of a lane
    whose last batch is in another bucket (or who has none) as it is."""
    b = buckets.index(size)

    def live(i, n):
        r = n % batch_size
        return (r > 0) & (bucket_of(r, buckets) == b)

    return _guarded(step, live)


def full_batches(step: Callable, batch_size: int) -> Callable:
    """A full-batch step that leaves a lane's carry as it is when batch ``i`` is
    past its ``n // B`` full batches (a vmapped host loop runs the most any lane
    of the group needs)."""
    return _guarded(step, lambda i, n: i < n // batch_size)


def _guarded(step: Callable, live: Callable) -> Callable:
    """``step`` where ``live(i, n)``, else the carry as it is (a ``lax.cond``)."""

    def run(c: FitCarry, i, order, n, key, data) -> FitCarry:
        return jax.lax.cond(live(i, n), lambda c: step(c, i, order, n, key, data), lambda c: c, c)

    return run


def masked(part: Callable) -> Callable:
    """A carry-updating part that leaves a seed's carry untouched once it stopped
    (the host loop keeps going while any seed of a vmapped group trains)."""

    def run(c: FitCarry, *args) -> FitCarry:
        new = part(c, *args)
        return jax.tree.map(lambda a, b: jnp.where(c.stop, b, a), new, c)

    return run
