"""Self-supervised encoders for initial pools: autoencoder, VAE and SimCLR.

Chandra et al. 2021, *On Initial Pools for Deep Active Learning*: a
self-supervised model is trained on the whole unlabeled pool; its per-point loss
ranks the points (§3.2.1, Eq. 1: the initial pool is ``argmax_i L(x_i; θ)``) and
its representation is clustered (§3.2.2; §5.2 "K-Means": k-means on SimCLR
features). Three encoders:

* ``ae``: an autoencoder; score = reconstruction error (mean squared error).
* ``vae``: a vanilla VAE (Kingma & Welling 2014) with a unit-variance Gaussian
  decoder; score ``recon`` = reconstruction error of the decoded posterior mean
  (§5.2: "data points ... whose reconstruction error was high"), ``elbo`` = the
  negative ELBO (reconstruction over 4 posterior samples + KL); features = the
  posterior mean.
* ``simclr``: a SimCLR encoder (Chen et al. 2020; NT-Xent loss, projection
  head); score = the average contrastive loss between each point and one
  augmented view per augmentation (§5.2 and its footnote 4: flip, blur, colour
  jitter, grey-scale; grey-scale is skipped for one-channel images), with the
  other points of its chunk of ``batch_size`` as negatives; features = the
  L2-normalised backbone output (before the projection head).

Architectures (``initial.ssl.arch``): ``mlp`` (two hidden layers), ``conv``
(4 stride-2 convolutions in the encoder and 4 transposed ones in the decoder,
as the paper's VAE, §5.3.1; images whose sides divide by 16), ``model``
(SimCLR only: the backbone of ``config.model``, e.g. ResNet-18 as in the paper,
§5.3.1) and ``auto`` (``conv`` when it applies, else ``mlp``). The paper's
SimCLR trains a ResNet-18 for hundreds of epochs with SCAN's recipe; ``mlp``
and ``conv`` are much smaller, chosen so the smoke study runs on a CPU.

Training is jitted on device (``initial.ssl.step_loop``: one program per epoch,
or a Python loop of jitted steps, which XLA:CPU runs faster for conv nets)
with jaxal's optimizer (:func:`jaxal.train.make_optimizer`, Adam) and exact
epochs (:func:`jaxal.train.epoch_permutation`, :func:`jaxal.train.batch_indices`:
weight-0 filler in the last batch). ``val_fraction`` of the pool is held out
and the weights of the epoch with the best validation loss are kept (§6.3).
The encoder's randomness comes from ``initial.ssl.seed`` alone: one encoder per
run, shared by all its seeds and strategies.

:func:`encode_pool` caches every encoder's outputs in ``cache_dir`` as
``<encoder>-<hash>.npz`` (the hash covers the settings and the pool's bytes),
under a file lock, so concurrent runs sharing the directory train it once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxal import interrupt
from jaxal import train as train_lib
from jaxal.predict import map_chunks
from jaxal.settings import SSLSettings, TrainSettings

Array = jax.Array

ENCODERS = ("ae", "vae", "simclr")
ARCHS = ("auto", "mlp", "conv", "model")
STEP_LOOPS = ("auto", "device", "host")
VAE_SAMPLES = 4  # posterior samples of the negative-ELBO score
CACHE_VERSION = 1


def resolve_arch(arch: str, x_shape: tuple) -> str:
    """``auto`` -> ``conv`` for ``[N, H, W, C]`` images with H, W divisible by 16, else ``mlp``."""
    if arch != "auto":
        return arch
    if len(x_shape) == 4 and x_shape[1] % 16 == 0 and x_shape[2] % 16 == 0:
        return "conv"
    return "mlp"


def conv_fits(x_shape: tuple) -> bool:
    return len(x_shape) == 4 and x_shape[1] % 16 == 0 and x_shape[2] % 16 == 0


# --- networks -----------------------------------------------------------------


class MLP(nn.Module):
    widths: tuple[int, ...]
    out: int

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[0], -1).astype(jnp.float32)
        for w in self.widths:
            x = nn.relu(nn.Dense(w)(x))
        return nn.Dense(self.out)(x)


class ConvEncoder(nn.Module):
    """4 stride-2 3x3 convolutions (32, 64, 128, 256 channels, leaky ReLU), then Dense."""

    out: int

    @nn.compact
    def __call__(self, x):
        x = x.astype(jnp.float32)
        for c in (32, 64, 128, 256):
            x = nn.leaky_relu(nn.Conv(c, (3, 3), strides=(2, 2), padding="SAME")(x))
        return nn.Dense(self.out)(x.reshape(x.shape[0], -1))


class ConvDecoder(nn.Module):
    """Dense to a ``[H/16, W/16, 256]`` map, then 4 stride-2 transposed convolutions."""

    shape: tuple[int, ...]  # (H, W, C)

    @nn.compact
    def __call__(self, z):
        h, w, c = self.shape
        x = nn.Dense((h // 16) * (w // 16) * 256)(z).reshape(-1, h // 16, w // 16, 256)
        for ch in (128, 64, 32):
            x = nn.leaky_relu(nn.ConvTranspose(ch, (3, 3), strides=(2, 2), padding="SAME")(x))
        return nn.ConvTranspose(c, (3, 3), strides=(2, 2), padding="SAME")(x)


class AutoEncoder(nn.Module):
    """Encoder and decoder; ``variational``: the encoder outputs (mean, log-variance)."""

    arch: str
    shape: tuple[int, ...]  # one input's shape
    hidden: int
    latent: int
    variational: bool

    def setup(self):
        out = 2 * self.latent if self.variational else self.latent
        if self.arch == "conv":
            self.enc = ConvEncoder(out)
            self.dec = ConvDecoder(tuple(self.shape))
        else:
            self.enc = MLP((self.hidden, self.hidden), out)
            self.dec = MLP((self.hidden, self.hidden), int(np.prod(self.shape)))

    def encode(self, x):
        h = self.enc(x)
        if not self.variational:
            return h, None
        mu, logvar = jnp.split(h, 2, axis=-1)
        return mu, jnp.clip(logvar, -10.0, 10.0)

    def decode(self, z):
        return self.dec(z).reshape((z.shape[0],) + tuple(self.shape))

    def __call__(self, x):
        return self.decode(self.encode(x)[0])


# --- encoders: init, loss, outputs --------------------------------------------


class Encoder(NamedTuple):
    """A self-supervised model as pure functions.

    ``state`` is non-trained model state (batch-norm statistics; ``{}`` if none).
    """

    name: str
    init: Callable  # (key, x_sample) -> (params, state)
    # (params, state, x [B, ...], w [B], key, train) -> (per-example loss [B], new state)
    loss: Callable
    # (params, state, x [B, ...], w [B], key) -> {"features": [B, d], <score>: [B], ...}
    outputs: Callable
    scores: tuple[str, ...]  # the score names of ``outputs``


def _sq_err(x, xhat):
    d = (x.astype(jnp.float32) - xhat).reshape(x.shape[0], -1)
    return jnp.sum(d * d, axis=-1)


def autoencoder(arch: str, shape: tuple, s: SSLSettings, variational: bool) -> Encoder:
    m = AutoEncoder(arch, tuple(shape), s.hidden, s.latent, variational)
    dims = float(np.prod(shape))

    def init(key, x):
        return m.init(key, x[:1]), {}

    def kl(mu, lv):
        return 0.5 * jnp.sum(mu * mu + jnp.exp(lv) - 1.0 - lv, axis=-1)

    def loss(params, state, x, w, key, train):
        del w, train
        mu, lv = m.apply(params, x, method=AutoEncoder.encode)
        if not variational:
            return 0.5 * _sq_err(x, m.apply(params, mu, method=AutoEncoder.decode)), state
        z = mu + jnp.exp(0.5 * lv) * jax.random.normal(key, mu.shape)
        rec = 0.5 * _sq_err(x, m.apply(params, z, method=AutoEncoder.decode))
        return rec + kl(mu, lv), state

    def outputs(params, state, x, w, key):
        del state, w
        mu, lv = m.apply(params, x, method=AutoEncoder.encode)
        out = {
            "features": mu,
            "recon": _sq_err(x, m.apply(params, mu, method=AutoEncoder.decode)) / dims,
        }
        if variational:

            def sample_rec(k):
                z = mu + jnp.exp(0.5 * lv) * jax.random.normal(k, mu.shape)
                return 0.5 * _sq_err(x, m.apply(params, z, method=AutoEncoder.decode))

            rec = jnp.mean(jax.vmap(sample_rec)(jax.random.split(key, VAE_SAMPLES)), axis=0)
            out["elbo"] = rec + kl(mu, lv)
        return out

    scores = ("recon", "elbo") if variational else ("recon",)
    return Encoder("vae" if variational else "ae", init, loss, outputs, scores)


# SimCLR ---------------------------------------------------------------------


def _blur(x):
    """3x3 Gaussian blur (sigma 1) of ``[B, H, W, C]`` images, per channel."""
    g = np.exp(-0.5 * np.array([-1.0, 0.0, 1.0]) ** 2)
    k = np.outer(g, g) / np.outer(g, g).sum()
    c = x.shape[-1]
    kernel = jnp.asarray(np.tile(k[:, :, None, None], (1, 1, 1, c)), jnp.float32)
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        (1, 1),
        "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=c,
    )


def _jitter(key, x, strength: float = 0.4):
    """Random brightness (shift) and contrast (scale about the image mean); for RGB
    also saturation (mix with the grey image). Inputs are standardised, so shifts
    are in units of the pool's standard deviation."""
    kb, kc, ks = jax.random.split(key, 3)
    b = x.shape[0]
    shape = (b,) + (1,) * (x.ndim - 1)
    bright = jax.random.uniform(kb, shape, minval=-strength, maxval=strength)
    contrast = jax.random.uniform(kc, shape, minval=1 - strength, maxval=1 + strength)
    mean = jnp.mean(x, axis=tuple(range(1, x.ndim)), keepdims=True)
    x = (x - mean) * contrast + mean + bright
    if x.ndim == 4 and x.shape[-1] == 3:
        sat = jax.random.uniform(ks, shape, minval=1 - strength, maxval=1 + strength)
        grey = jnp.mean(x, axis=-1, keepdims=True)
        x = grey + (x - grey) * sat
    return x


def _grey(x):
    return jnp.broadcast_to(jnp.mean(x, axis=-1, keepdims=True), x.shape)


def _noise(key, x, scale: float = 0.2):
    return x + scale * jax.random.normal(key, x.shape)


def _mask(key, x, rate: float = 0.2):
    return jnp.where(jax.random.bernoulli(key, rate, x.shape), 0.0, x)


def simclr_augment(key, x):
    """One random SimCLR view of a batch (Chen et al. 2020, §3 and Appendix A).

    Images ``[B, H, W, C]``: random crop (zero padding H/8) + horizontal flip,
    colour jitter with probability 0.8, grey-scale with probability 0.2 (RGB),
    Gaussian blur with probability 0.5. Vectors ``[B, D]``: Gaussian noise and
    random masking of 20% of the entries.
    """
    x = x.astype(jnp.float32)
    ks = jax.random.split(key, 8)
    b = x.shape[0]
    if x.ndim != 4:
        return _mask(ks[1], _noise(ks[0], x))

    def maybe(k, p, y, fn):
        do = jax.random.bernoulli(k, p, (b,)).reshape((b,) + (1,) * (y.ndim - 1))
        return jnp.where(do, fn(y), y)

    x = train_lib.augment(ks[0], x, max(1, x.shape[1] // 8), True)
    x = maybe(ks[1], 0.8, x, lambda y: _jitter(ks[2], y))
    if x.shape[-1] == 3:
        x = maybe(ks[3], 0.2, x, _grey)
    return maybe(ks[4], 0.5, x, _blur)


def scoring_views(key, x) -> list:
    """The augmented variants each point's score averages over (§5.2, footnote 4):
    one per augmentation — flip, blur, colour jitter and (RGB only) grey-scale; for
    vectors, noise and masking."""
    x = x.astype(jnp.float32)
    k1, k2 = jax.random.split(key)
    if x.ndim != 4:
        return [_noise(k1, x), _mask(k2, x)]
    views = [x[:, :, ::-1, :], _blur(x), _jitter(k1, x)]
    if x.shape[-1] == 3:
        views.append(_grey(x))
    return views


def nt_xent(za: Array, zb: Array, valid: Array, temperature: float) -> Array:
    """Per-pair NT-Xent loss (SimCLR Eq. 1, averaged over both directions).

    ``za[i]`` and ``zb[i]`` are the two views of example ``i`` (L2-normalised
    ``[B, d]``); every other valid view of the batch is a negative. Returns
    ``float[B]`` (``(ℓ(i, i+B) + ℓ(i+B, i)) / 2``).
    """
    b = za.shape[0]
    z = jnp.concatenate([za, zb], axis=0)  # [2B, d]
    v = jnp.concatenate([valid, valid], axis=0)
    sim = (z @ z.T) / temperature
    eye = jnp.eye(2 * b, dtype=bool)
    sim = jnp.where(eye | ~v[None, :], -jnp.inf, sim)
    pos = jnp.concatenate([jnp.arange(b, 2 * b), jnp.arange(b)])
    logp = jax.nn.log_softmax(sim, axis=-1)
    per = -logp[jnp.arange(2 * b), pos]
    return 0.5 * (per[:b] + per[b:])


def _normalize(z):
    return z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)


def simclr(arch: str, shape: tuple, s: SSLSettings, model=None) -> Encoder:
    """SimCLR: backbone ``h = f(x)``, projection ``g(h)``, NT-Xent on ``g``."""
    proj = MLP((s.hidden,), s.latent)
    if arch == "model":
        if model is None:
            raise ValueError("config.initial.ssl.arch='model' needs the run's model")

        def backbone(params, state, x, train):
            v = {"params": params["backbone"], **({"batch_stats": state} if state else {})}
            _, h, new_bs = model.apply(v, x, train=train)
            return h, (new_bs if train and state else state)

        def init_backbone(key, x):
            v = model.init(key, x)
            return v["params"], v.get("batch_stats", {})

    else:
        net = ConvEncoder(s.hidden) if arch == "conv" else MLP((s.hidden, s.hidden), s.hidden)

        def backbone(params, state, x, train):
            del train
            return net.apply(params["backbone"], x), state

        def init_backbone(key, x):
            return net.init(key, x), {}

    def init(key, x):
        k1, k2 = jax.random.split(key)
        bb, state = init_backbone(k1, x[:2].astype(jnp.float32))
        h, _ = backbone({"backbone": bb}, state, x[:2].astype(jnp.float32), False)
        return {"backbone": bb, "proj": proj.init(k2, h)}, state

    def project(params, state, x, train):
        h, state = backbone(params, state, x, train)
        return _normalize(proj.apply(params["proj"], h)), h, state

    def loss(params, state, x, w, key, train):
        ka, kb = jax.random.split(key)
        xa, xb = simclr_augment(ka, x), simclr_augment(kb, x)
        # One pass over both views (batch-norm statistics see both).
        z, _, state = project(params, state, jnp.concatenate([xa, xb]), train)
        za, zb = jnp.split(z, 2)
        return nt_xent(za, zb, w > 0, s.temperature), state

    def outputs(params, state, x, w, key):
        x = x.astype(jnp.float32)
        za, h, _ = project(params, state, x, False)
        losses = [
            nt_xent(za, project(params, state, v, False)[0], w > 0, s.temperature)
            for v in scoring_views(key, x)
        ]
        return {"features": _normalize(h), "loss": jnp.mean(jnp.stack(losses), axis=0)}

    return Encoder("simclr", init, loss, outputs, ("loss",))


def make_encoder(name: str, x_shape: tuple, s: SSLSettings, model=None) -> Encoder:
    arch = resolve_arch(s.arch, x_shape)
    if name == "simclr":
        return simclr(arch, tuple(x_shape[1:]), s, model)
    if arch == "model":
        raise ValueError(f"config.initial.ssl.arch='model' is for simclr only, not {name}")
    return autoencoder(arch, tuple(x_shape[1:]), s, variational=(name == "vae"))


# --- training -----------------------------------------------------------------


class History(NamedTuple):
    train_loss: np.ndarray  # [epochs] mean training loss
    val_loss: np.ndarray  # [epochs] (nan without a validation split)
    best_epoch: int  # 1-based epoch whose weights were kept


def _mean_loss(enc: Encoder, chunk: int) -> Callable:
    """``(params, state, x, key) -> mean per-example loss over x`` (eval mode), chunked."""

    def fn(params, state, x, key):
        m = x.shape[0]

        def one(xb, i):
            w = ((i * chunk + jnp.arange(xb.shape[0])) < m).astype(jnp.float32)
            per, _ = enc.loss(params, state, xb, w, jax.random.fold_in(key, i), False)
            return per * w

        return jnp.sum(map_chunks(one, x, chunk)) / m

    return jax.jit(fn)


def fit_encoder(
    enc: Encoder, x: Array, s: SSLSettings, *, step_loop: str = "device", log=None
) -> tuple[Any, Any, History]:
    """Train ``enc`` on ``x`` (jitted, on device); keeps the best validation epoch.

    Returns:
      ``(params, state, History)``.
    """
    key = jax.random.key(s.seed)
    k_split, k_init, k_train, k_val = jax.random.split(key, 4)
    n = x.shape[0]
    n_val = int(round(s.val_fraction * n)) if s.val_fraction > 0 else 0
    n_val = min(n_val, n - 2)
    perm = jax.random.permutation(k_split, n)
    x_val, x_tr = x[perm[:n_val]], x[perm[n_val:]]
    n_tr = n - n_val
    bsz = min(s.batch_size, n_tr)
    steps = math.ceil(n_tr / bsz)
    params, state = enc.init(k_init, x_tr)
    tx = train_lib.make_optimizer(
        TrainSettings(optimizer="adam", learning_rate=s.learning_rate, weight_decay=s.weight_decay)
    )
    opt_state = tx.init(params)
    order = jnp.arange(n_tr, dtype=jnp.int32)

    def objective(params, state, xb, w, k):
        per, new_state = enc.loss(params, state, xb, w, k, True)
        return jnp.sum(w * per) / jnp.maximum(jnp.sum(w), 1.0), new_state

    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def step(carry, i, perm, ekey, x_tr):
        params, state, opt_state, total = carry
        idx, w = train_lib.batch_indices(perm, jnp.int32(n_tr), i, bsz)
        (loss, new_state), g = grad_fn(params, state, x_tr[idx], w, jax.random.fold_in(ekey, i))
        updates, opt_state = tx.update(g, opt_state, params)
        return optax.apply_updates(params, updates), new_state, opt_state, total + loss * w.sum()

    def begin(kperm):
        return train_lib.epoch_permutation(kperm, order, jnp.int32(n_tr))

    begin_j = jax.jit(begin)
    step_j = jax.jit(step)
    epoch_j = jax.jit(
        lambda carry, perm, ekey, x_tr: jax.lax.fori_loop(
            0, steps, lambda i, c: step(c, i, perm, ekey, x_tr), carry
        )
    )
    val_fn = _mean_loss(enc, bsz) if n_val > 0 else None
    best, best_val, best_epoch = (params, state), np.inf, 0
    train_hist, val_hist = [], []
    for e in range(s.epochs):
        interrupt.check()
        kperm, ekey = jax.random.split(jax.random.fold_in(k_train, e))
        perm_e = begin_j(kperm)
        carry = (params, state, opt_state, jnp.float32(0))
        if step_loop == "host":
            for i in range(steps):
                interrupt.check()
                carry = step_j(carry, jnp.int32(i), perm_e, ekey, x_tr)
        else:
            carry = epoch_j(carry, perm_e, ekey, x_tr)
        params, state, opt_state, total = carry
        train_hist.append(float(total) / n_tr)
        if val_fn is not None:
            v = float(val_fn(params, state, x_val, k_val))
            val_hist.append(v)
            if v < best_val:  # the best validation epoch's weights are kept (§6.3)
                best, best_val, best_epoch = (params, state), v, e + 1
        else:
            val_hist.append(float("nan"))
            best, best_epoch = (params, state), e + 1
        if log is not None and (e + 1 == s.epochs or (e + 1) % max(1, s.epochs // 5) == 0):
            log(
                f"  {enc.name} epoch {e + 1}/{s.epochs}: train loss {train_hist[-1]:.4g}"
                + (f", val loss {val_hist[-1]:.4g}" if val_fn is not None else "")
            )
    hist = History(np.asarray(train_hist), np.asarray(val_hist), best_epoch)
    return best[0], best[1], hist


def pool_outputs(enc: Encoder, params, state, x: Array, chunk: int, key) -> dict:
    """``enc.outputs`` over the whole pool in chunks of ``chunk`` (host numpy)."""
    m = x.shape[0]

    @jax.jit
    def run(params, state, x):
        def one(xb, i):
            w = ((i * chunk + jnp.arange(xb.shape[0])) < m).astype(jnp.float32)
            return enc.outputs(params, state, xb, w, jax.random.fold_in(key, i))

        return map_chunks(one, x, chunk)

    return {k: np.asarray(v) for k, v in run(params, state, x).items()}


def resolve_step_loop(mode: str, arch: str) -> str:
    if mode != "auto":
        return mode
    return "host" if jax.default_backend() == "cpu" and arch in ("conv", "model") else "device"


def train_and_encode(
    name: str, x: np.ndarray, s: SSLSettings, *, model=None, log=None
) -> dict[str, np.ndarray]:
    """Train encoder ``name`` on the pool ``x`` and return its per-point outputs:
    ``features [N, d]``, its scores (``recon``, ``elbo`` or ``loss``, ``[N]``),
    ``train_loss``/``val_loss`` ``[epochs]`` and ``best_epoch``."""
    enc = make_encoder(name, x.shape, s, model)
    arch = resolve_arch(s.arch, x.shape)
    xd = jax.device_put(jnp.asarray(x), jax.local_devices()[0])
    params, state, hist = fit_encoder(
        enc, xd, s, step_loop=resolve_step_loop(s.step_loop, arch), log=log
    )
    out = pool_outputs(
        enc, params, state, xd, min(s.batch_size, x.shape[0]), jax.random.key(s.seed + 1)
    )
    out.update(
        train_loss=hist.train_loss, val_loss=hist.val_loss, best_epoch=np.int64(hist.best_epoch)
    )
    return out


# --- cache ----------------------------------------------------------------------


def fingerprint(x: np.ndarray) -> str:
    """A hash of the pool's shape, dtype and bytes."""
    a = np.ascontiguousarray(x)
    h = hashlib.sha1(f"{a.shape}|{a.dtype}".encode())
    h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def cache_key(name: str, s: SSLSettings, data_hash: str, model_id: str | None) -> str:
    settings = dataclasses.asdict(s)
    settings.pop("step_loop")  # where the step loop runs does not change what is learned
    model_id = model_id if (name == "simclr" and s.arch == "model") else None
    blob = json.dumps(
        {
            "v": CACHE_VERSION,
            "encoder": name,
            "ssl": settings,
            "data": data_hash,
            "model": model_id,
        },
        sort_keys=True,
    )
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


@contextlib.contextmanager
def _locked(path: str):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path + ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def cache_path(cache_dir: str, name: str, key: str) -> str:
    return os.path.join(cache_dir, f"{name}-{key}.npz")


def encode_pool(
    name: str,
    x: np.ndarray,
    s: SSLSettings,
    *,
    cache_dir: str | None,
    model=None,
    model_id: str | None = None,
    write: bool = True,
    log=None,
) -> dict[str, np.ndarray]:
    """:func:`train_and_encode`, cached in ``cache_dir`` (``None``: not cached).

    A cached file is reused when its key (encoder settings, pool bytes, and the
    backbone for ``arch=model``) matches; it is written atomically (temporary
    name, then rename) under an exclusive lock on ``<file>.lock``.
    """
    if cache_dir is None:
        return train_and_encode(name, x, s, model=model, log=log)
    key = cache_key(name, s, fingerprint(x), model_id)
    path = cache_path(cache_dir, name, key)
    with _locked(path):
        if os.path.exists(path):
            with np.load(path, allow_pickle=False) as f:
                if str(f["cache_key"]) == key:
                    if log is not None:
                        log(f"initial pools: {name} encoder from the cache {path}")
                    return {k: f[k] for k in f.files if k != "cache_key"}
        if log is not None:
            log(
                f"initial pools: training the {name} encoder on the pool ({x.shape[0]} points, "
                f"{s.epochs} epochs); cached in {path}"
            )
        out = train_and_encode(name, x, s, model=model, log=log)
        if write:
            tmp = path + f".tmp{os.getpid()}.npz"
            np.savez(tmp, cache_key=np.asarray(key), **out)
            os.replace(tmp, path)
    return out
