"""The active-learning round loop: fit -> evaluate -> score -> select -> label.

The per-seed state is a fixed-shape pytree (:class:`SeedState`); the four
phases are pure per-seed functions that a :class:`~jaxal.parallel.SeedExecutor`
runs over a leading ``[S]`` seed axis. The Python loop around them only times
phases and collects metrics. Shapes never change between rounds, so each phase
compiles once per run. Every size comes from the engine's
:class:`~jaxal.settings.Plan`.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import interrupt, labeling_rate, parallel
from jaxal import train as train_lib
from jaxal.grid import Lanes
from jaxal.initial import InitialInputs, bind_inputs, initial_pool
from jaxal.models.base import Model
from jaxal.predict import make_predict
from jaxal.rng import Purpose, derive, seed_keys
from jaxal.settings import InitialSettings, MCSettings, Plan, ScheduleSettings, TrainSettings
from jaxal.strategies.base import Outputs, Strategy, masked_top_k

Array = jax.Array


class SeedState(NamedTuple):
    """Everything one seed carries from round to round (fixed shapes)."""

    key: Array  # typed root key of the seed
    labeled: Array  # bool[N]
    order: Array  # int32[budget]: pool indices in acquisition order, -1 padded
    num_labeled: Array  # int32[]
    variables: Any  # model variables after the last fit (the warm-start source)
    strategy_state: Any  # e.g. the score history of history_subsample
    hparams: Any  # {learning_rate, weight_decay, momentum}: the lane's optimizer values
    # The round loop's own per-lane state (query size, best metric, rounds without
    # improvement, stopped): see `_schedule_step`. Set by `init_state`.
    schedule: Any = None


class RoundRecord(NamedTuple):
    """Host-side results of one round for all lanes (arrays are ``[L]``: the
    seeds, or (grid setting, seed) pairs — :class:`jaxal.grid.Lanes`).

    Phase seconds are wall time of the phase for all seeds together."""

    round: int
    num_labeled: int  # the labels of the lanes this round (the most, if they differ)
    test_accuracy: np.ndarray
    test_nll: np.ndarray
    train_epochs: np.ndarray
    train_accuracy: np.ndarray
    diverged: np.ndarray  # bool [S]: training diverged (selection fell back to random)
    train_seconds: float
    eval_seconds: float
    score_seconds: float
    select_seconds: float
    labels: np.ndarray | None = None  # int [L]: each lane's labels this round
    val_accuracy: np.ndarray | None = None  # [L] on validation split 1 (nan: none)
    val2_accuracy: np.ndarray | None = None  # [L] on validation split 2 (nan: none)
    queried: np.ndarray | None = None  # int [L]: labels acquired after this round
    active: np.ndarray | None = None  # bool [L]: the lane ran this round (not stopped before)
    stopped: np.ndarray | None = None  # bool [L]: the lane stopped after this round
    # int [L]: unlabeled pool points the strategy scored this round (N - labels for
    # the whole pool, the candidates for subsampling ones, 0 for random/no query)
    scored: np.ndarray | None = None
    test_accuracy_replicas: np.ndarray | None = None  # [L, R] with train.retrains = R > 1


class TrainPhases(NamedTuple):
    """The strategy-independent phases, shared by every strategy of a run (so
    they compile once per run, not once per strategy)."""

    fit: Callable  # (state, round, data) -> (variables, FitMetrics)
    evaluate: Callable  # (variables, data) -> (acc, nll, val acc, val2 acc)
    executor: parallel.SeedExecutor
    train: TrainSettings | None = None  # its values are the lanes' default hyperparameters
    # ``fit`` cut at epoch boundaries over lanes (checkpoints inside a round);
    # None with train.retrains > 1.
    chunks: LaneChunks | None = None


class LaneChunks(NamedTuple):
    """One round's fit over lanes in pieces: ``carry = start(state, round, data)``;
    ``carry = run_until(carry, until, state, round, data)`` (epochs while a lane
    trains and has done fewer than ``until``); ``finish(carry) -> (variables,
    FitMetrics)``. The pieces run in the same order whatever the chunking, so a
    round resumed from a saved carry ends as the uninterrupted one."""

    start: Callable
    run_until: Callable
    finish: Callable


class InRound(NamedTuple):
    """Checkpoints inside a round (``checkpoint.every_epochs`` / ``every_minutes``),
    given to :func:`rounds` by the experiment runner.

    ``chunk``: epochs per piece of training; ``restore(round, template)`` ->
    the saved carry of that round of this strategy, or None; ``after(round,
    carry, stopping)`` is called after every piece: it saves when a save is due,
    and always when ``stopping`` (a stop was requested during the piece)."""

    chunk: int
    restore: Callable[[int, Any], Any]
    after: Callable[[int, Any, bool], None]


class Engine(NamedTuple):
    """The per-seed phases of one strategy's run, wrapped for the seed axis."""

    init: Callable  # (keys [L], hparams [L], data) -> SeedState [L]
    fit: Callable  # (state, round, data) -> (variables, FitMetrics)
    evaluate: Callable  # (variables, data) -> (acc, nll)
    score: Callable  # (state, round, data) -> (candidates | None, Outputs)
    score_first: Callable | None  # round 0's score for `score_pool_first` strategies
    select: Callable  # (state, round, candidates, outputs, take [L], diverged) -> (state, picked)
    plan: Plan
    executor: parallel.SeedExecutor
    train: TrainSettings | None = None  # the default hyperparameters of a lane
    schedule: ScheduleSettings | None = None  # labels per round and stopping
    needs: Any = None  # the strategy's Needs (None: assume it scores the pool)
    chunks: LaneChunks | None = None  # fit in pieces (checkpoints inside a round)

    @property
    def seed_execution(self) -> str:
        return self.executor.mode

    @property
    def placement(self) -> parallel.Placement:
        return self.executor.placement


def make_train_phases(
    model: Model, train: TrainSettings, executor: parallel.SeedExecutor, grid=()
) -> TrainPhases:
    """Fit (re-initialising or warm-starting the model) and evaluate, over lanes.

    Args:
      model: the model adapter.
      train: training settings; ``step_loop`` must be resolved (``device`` or
        ``host``, see :func:`jaxal.parallel.resolve_step_loop`).
      executor: how the seed (lane) axis runs.
      grid: the run's hyperparameter grid settings (:mod:`jaxal.grid`); each
        lane trains with its state's ``hparams``.
    """
    eval_fn = train_lib.make_evaluate(model, train.eval_batch_size)

    def start_variables(state: SeedState, round_: Array, data: train_lib.Data):
        start = data.init_variables  # train.init_from (jaxal.pretrain): data, not constants
        if start is not None:  # a re-initialised round (or a warm start's first) starts there
            if train.reinit:
                return start
            first = round_ == 0
            return jax.tree.map(lambda a, b: jnp.where(first, a, b), start, state.variables)
        if train.reinit:
            return model.init(derive(state.key, round_, Purpose.MODEL_INIT), data.x_pool[:1])
        return state.variables

    def ctx(state: SeedState, round_: Array):
        return state.order, state.num_labeled, derive(state.key, round_, Purpose.TRAIN)

    def evaluate_seed(variables, data: train_lib.Data):
        acc, nll = eval_fn(variables, data.x_test, data.y_test)
        val_acc, _ = eval_fn(variables, data.x_val, data.y_val)  # nan without the split
        val2_acc, _ = eval_fn(variables, data.x_val2, data.y_val2)
        return acc, nll, val_acc, val2_acc

    if train.step_loop == "device":
        fit_fn = train_lib.make_fit(model, train, train.eval_batch_size, grid)

        def fit_seed(state: SeedState, round_: Array, data: train_lib.Data, last_sizes=None):
            variables = start_variables(state, round_, data)
            return fit_fn(variables, *ctx(state, round_), data, state.hparams, last_sizes)

        def make_fit(sizes):
            seed_fit = functools.partial(fit_seed, last_sizes=sizes)
            fit = executor.wrap(seed_fit, (0, None, None))
            if train.retrains > 1:  # the [R] replica axis (train.retrains)
                fit = _replicated_fit(seed_fit, fit, executor, train.retrains)
            return fit

        every_bucket = executor.mode == "loop"
        fit = ByLastBatch(make_fit, train, state_arg=0, every_bucket=every_bucket)
        pieces = train_lib.make_fit_chunks(model, train, train.eval_batch_size, grid)

        def start_seed(state: SeedState, round_: Array, data: train_lib.Data):
            variables = start_variables(state, round_, data)
            return pieces.start(variables, *ctx(state, round_), data, state.hparams)

        def run_seed(c, until, state: SeedState, round_: Array, data: train_lib.Data, sizes=None):
            return pieces.run_until(c, until, *ctx(state, round_), data, sizes)

        chunks = LaneChunks(
            executor.wrap(start_seed, (0, None, None)),
            ByLastBatch(
                lambda sizes: executor.wrap(
                    functools.partial(run_seed, sizes=sizes), (0, None, 0, None, None)
                ),
                train,
                state_arg=2,
                every_bucket=every_bucket,
            ),
            executor.wrap(pieces.finish, (0,)),
        )
    elif train.step_loop == "host":
        fit, chunks = _host_fit(model, train, executor, start_variables, ctx, grid)
    else:
        raise ValueError(f"train.step_loop={train.step_loop!r} is unresolved; use device or host")
    evaluate = executor.wrap(_replica_mean(evaluate_seed, train.retrains), (0, None))
    if train.retrains > 1:
        chunks = None  # the replicas' carries are not cut (see jaxal.config.validate)
    return TrainPhases(fit, evaluate, executor, train, chunks)


class ByLastBatch:
    """A device-step-loop phase compiled for the last-batch bucket sizes its
    lanes need (:func:`jaxal.train.last_batch_sizes`, read from the state's
    ``num_labeled``): ``make(sizes)`` builds the wrapped phase for ``sizes``.

    ``every_bucket`` (seeds as a loop of per-seed calls): one program holding
    every bucket's last step, built once; each call takes its own bucket's
    branch (a real ``lax.cond``), so the others cost nothing. Otherwise (lanes
    vmapped, where a ``cond`` on per-lane sizes runs every branch): one program
    per set of sizes, and a round whose sizes are among those of a program
    already built runs that one (its other buckets' steps leave every lane as
    it is). Either way ``len(self)``, the round programs built, is at most the
    number of buckets and never grows with rounds."""

    def __init__(
        self, make: Callable, train: TrainSettings, state_arg: int, every_bucket: bool = False
    ):
        self.make, self.state_arg, self.batch_size = make, state_arg, train.batch_size
        self.buckets = train_lib.batch_buckets(train.batch_size, train.batch_buckets)
        self.every_bucket = every_bucket
        self.built: dict[tuple, Callable] = {}

    def sizes(self, state: SeedState) -> tuple[int, ...]:
        if self.every_bucket:
            return self.buckets
        n = parallel.to_host(state.num_labeled)
        return train_lib.last_batch_sizes(n, self.batch_size, self.buckets)

    def __call__(self, *args):
        sizes = self.sizes(args[self.state_arg])
        fits = [k for k in self.built if set(sizes) <= set(k)]
        if not fits:
            self.built[sizes] = self.make(sizes)
            fits = [sizes]
        return self.built[min(fits, key=len)](*args)

    def __len__(self) -> int:
        return len(self.built)


def _host_fit(
    model: Model,
    train: TrainSettings,
    executor: parallel.SeedExecutor,
    start_variables: Callable,
    ctx: Callable,
    grid=(),
) -> Callable:
    """The host step loop (``train.step_loop = host``) over the seed axis: a
    Python driver of jitted pieces, run by the executor like any phase."""
    parts = train_lib.make_fit_parts(model, train, train.eval_batch_size, grid)
    seed_axes = (0, 0, 0, 0, None)  # carry/variables, order, num_labeled, key, data
    step_axes = (0, None, 0, 0, 0, None)

    def jit_parts(p: train_lib.FitParts) -> train_lib.FitParts:
        return train_lib.FitParts(
            start=executor.jit(p.start, seed_axes + (0,)),  # + the lane's hparams
            begin_epoch=executor.jit(train_lib.masked(p.begin_epoch), seed_axes),
            step=executor.jit(train_lib.masked(p.step), step_axes),
            end_epoch=executor.jit(train_lib.masked(p.end_epoch), seed_axes),
            finish=executor.jit(p.finish, (0,)),
            last=tuple((b, executor.jit(train_lib.masked(f), step_axes)) for b, f in p.last),
        )

    jparts = jit_parts(parts)
    # lanes of one vmapped group with labeled sets of different sizes (compiled only then)
    guarded = jit_parts(train_lib.guarded_steps(parts, train.batch_size))
    driver = train_lib.host_fit(jparts, train.batch_size, guarded)
    first = executor.jit(lambda s, r, d: (start_variables(s, r, d), *ctx(s, r)), (0, None, None))
    piece = train_lib.host_fit_chunks(jparts, train.batch_size, guarded)
    ctx_of = executor.jit(lambda s, r: ctx(s, r), (0, None))

    def fit_seed(state: SeedState, round_: Array, data: train_lib.Data):
        return driver(*first(state, round_, data), data, state.hparams)

    def start_seed(state: SeedState, round_: Array, data: train_lib.Data):
        variables, *c = first(state, round_, data)
        return piece.start(variables, *c, data, state.hparams)

    def run_seed(c, until, state: SeedState, round_: Array, data: train_lib.Data):
        return piece.run_until(c, until, *ctx_of(state, round_), data)

    chunks = LaneChunks(
        executor.map(start_seed, (0, None, None)),
        executor.map(run_seed, (0, None, 0, None, None)),
        executor.map(piece.finish, (0,)),
    )

    if train.retrains > 1:  # replicas one after another (see _replicated_fit)
        def first_replica(state: SeedState, round_: Array, data: train_lib.Data, j: Array):
            state = replica_state(state, j)
            return start_variables(state, round_, data), *ctx(state, round_)

        first_r = executor.jit(first_replica, (0, None, None, None))
        fit_one = fit_seed

        def fit_seed(state: SeedState, round_: Array, data: train_lib.Data):
            variables, fm = fit_one(state, round_, data)
            rest = tuple(
                driver(*first_r(state, round_, data, jnp.int32(j)), data, state.hparams)[0]
                for j in range(1, train.retrains)
            )
            return (variables, *rest), fm

    return executor.map(fit_seed, (0, None, None)), chunks


# Retrains (``train.retrains = R``): each round's model trained R times on the
# same labeled set, its evaluation metrics averaged -- Németh & Matuszka,
# "Compute-Efficient Active Learning", Sec. 3.1: "Each model within a retraining
# iteration underwent training three times with the same dataset using different
# random seeds, and the results were averaged". Replica j trains as its lane would
# with the root key ``replica_key(key, j)``: replica 0 is the lane's own key, i.e.
# exactly the model of ``R = 1``, and it is the one that scores the pool (Algorithm
# 1 has one model M per round; the paper does not say which of the three scores;
# the authors' code scores with the last-trained one, or with ``--use-best`` the one
# of best *test* accuracy -- replicas are exchangeable, so replica 0 is the last one
# in distribution, and the pools of any R are those of R = 1: bitwise under
# ``seed_execution = loop``, to float rounding under ``vmap``). With
# ``train.reinit = False`` every replica warm-starts from replica 0's last weights
# (the state keeps one model). ``FitMetrics`` (epochs, train accuracy, divergence
# and so the random fallback of the selection) are replica 0's.
_REPLICA_TAG = 0x524550  # "REP": far from the round numbers `derive` folds in first


def replica_key(root: Array, j: int | Array) -> Array:
    """The root key of retrain replica ``j >= 1`` of a lane rooted at ``root``
    (replica 0 uses ``root`` itself)."""
    return jax.random.fold_in(root, _REPLICA_TAG + j)


def replica_state(state: SeedState, j: int | Array) -> SeedState:
    """``state`` as replica ``j >= 1`` trains it: only its root key differs."""
    return state._replace(key=replica_key(state.key, j))


def _replicated_fit(fit_seed: Callable, fit: Callable, executor, retrains: int) -> Callable:
    """The device step loop's fit over ``R = retrains`` replicas: returns
    ``((variables_0, ..., variables_{R-1}), replica 0's FitMetrics)``.

    Under ``seed_execution = vmap`` the replicas are an ``[R]`` array axis inside
    each lane's program (``vmap`` over their root keys; XLA batches them, so
    replica 0 agrees with ``R = 1`` to float rounding); under ``loop`` they run one
    after another -- replica 0 is the ``R = 1`` program itself (``fit``), the others
    one more program with the replica index as data -- so replica 0 is
    bit-identical to ``R = 1``."""
    if executor.mode == "vmap":

        def fit_all(state: SeedState, round_: Array, data: train_lib.Data):
            keys = jnp.stack([state.key, *(replica_key(state.key, j) for j in range(1, retrains))])
            v, fm = jax.vmap(lambda k: fit_seed(state._replace(key=k), round_, data))(keys)
            first = jax.tree.map(lambda a: a[0], fm)
            return tuple(jax.tree.map(lambda a, j=j: a[j], v) for j in range(retrains)), first

        return executor.wrap(fit_all, (0, None, None))
    rest = executor.wrap(
        lambda s, r, d, j: fit_seed(replica_state(s, j), r, d)[0], (0, None, None, None)
    )

    def fit_replicas(state: SeedState, round_: Array, data: train_lib.Data):
        variables, fm = fit(state, round_, data)
        others = tuple(rest(state, round_, data, jnp.int32(j)) for j in range(1, retrains))
        return (variables, *others), fm

    return fit_replicas


def _replica_mean(evaluate_seed: Callable, retrains: int) -> Callable:
    """``evaluate_seed`` for ``R = retrains`` replicas: the mean over replicas of
    each metric (test accuracy, NLL, validation accuracies), then the replicas'
    test accuracies ``[R]``. ``R = 1``: ``evaluate_seed`` itself."""
    if retrains == 1:
        return evaluate_seed

    def evaluate(variables: tuple, data: train_lib.Data):
        per = [evaluate_seed(v, data) for v in variables]
        means = tuple(jnp.mean(jnp.stack(m)) for m in zip(*per, strict=True))
        return (*means, jnp.stack([p[0] for p in per]))

    return evaluate


def make_initial_state(
    model: Model,
    plan: Plan,
    initial: InitialSettings,
    executor: parallel.SeedExecutor,
    initial_inputs: InitialInputs | None = None,
) -> Callable:
    """``init(keys, hparams, data) -> SeedState`` of every lane before round 0:
    the initial pool and the model's first variables, which do not depend on
    the strategy (its ``strategy_state`` is left ``()``). One per run, shared by
    its strategies' engines (:func:`make_engine`), so it compiles once."""

    def init_seed(key: Array, hparams, data: train_lib.Data, shared, rows) -> SeedState:
        labeled, order, n = initial_pool(
            derive(key, 0, Purpose.INITIAL_POOL),
            data.y_pool,
            initial,
            plan.num_classes,
            plan.budget,
            shared._replace(rows=rows),
        )
        variables = model.init(derive(key, 0, Purpose.MODEL_INIT), data.x_pool[:1])
        return SeedState(key, labeled, order, n, variables, (), hparams)

    wrapped = executor.wrap(init_seed, (0, 0, None, None, 0))
    return bind_inputs(wrapped, initial_inputs, executor.placement)


def make_engine(
    model: Model,
    strategy: Strategy,
    plan: Plan,
    phases: TrainPhases,
    *,
    initial: InitialSettings,
    mc: MCSettings,
    score_batch_size: int,
    initial_inputs: InitialInputs | None = None,
    schedule: ScheduleSettings | None = None,
    initial_state: Callable | None = None,
) -> Engine:
    """Build the per-seed phases of one strategy's run and wrap them for S seeds.

    Args:
      model: the model adapter.
      strategy: the acquisition strategy.
      plan: the run's sizes (the ``order`` buffer holds ``plan.budget`` labels).
      phases: fit/evaluate shared with the other strategies of the run.
      initial: the initial-pool settings (:mod:`jaxal.initial`).
      mc: MC-dropout settings for sample-based strategies.
      score_batch_size: pool rows per scoring chunk.
      initial_inputs: what the initial-pool strategy reads besides the labels
        (features, scores, ``from_file`` rows; :func:`jaxal.initial.prepare`).
      initial_state: :func:`make_initial_state` of the run, shared by its
        strategies so that it compiles once (built here when ``None``).
    """
    k, num_pool, capacity = plan.query_size, plan.num_pool, plan.budget
    predict = make_predict(
        model,
        strategy.needs,
        samples=mc.samples,
        mode=mc.mode,
        chunk=score_batch_size,
        consistent=mc.consistent,
    )

    ex = phases.executor
    if initial_state is None:
        initial_state = make_initial_state(model, plan, initial, ex, initial_inputs)
    # Run state of the strategy (the same for every seed): stacked over the lanes
    # by a program of its own, so the initial pools and models above compile once.
    has_state = bool(jax.tree.leaves(jax.eval_shape(lambda: strategy.init(num_pool))))
    stacked_state = ex.wrap(lambda key: strategy.init(num_pool), (0,)) if has_state else None

    def init(keys: Array, hparams, data: train_lib.Data) -> SeedState:
        state = initial_state(keys, hparams, data)
        if stacked_state is None:
            return state._replace(strategy_state=strategy.init(num_pool))
        return state._replace(strategy_state=stacked_state(state.key))

    def score_seed(state: SeedState, round_: Array, data: train_lib.Data, whole_pool=False):
        cand = None
        if not whole_pool:
            cand = strategy.propose(
                derive(state.key, round_, Purpose.PROPOSE), state.labeled, state.strategy_state
            )
        x = data.x_pool if cand is None else data.x_pool[cand]
        return cand, predict(state.variables, x, derive(state.key, round_, Purpose.SCORE))

    def score_pool(state: SeedState, round_: Array, data: train_lib.Data):
        return score_seed(state, round_, data, whole_pool=True)

    def select_seed(state, round_: Array, cand, outputs: Outputs, take: Array, diverged: Array):
        labeled = state.labeled if cand is None else state.labeled[cand]
        local = strategy.select(derive(state.key, round_, Purpose.SELECT), outputs, labeled, k)
        # Divergence policy: a seed whose training diverged selects uniformly at
        # random this round (its outputs are garbage); its strategy state stays.
        u = jax.random.uniform(derive(state.key, round_, Purpose.FALLBACK), labeled.shape)
        local = jnp.where(diverged, masked_top_k(u, labeled, k), local)
        picked = local if cand is None else cand[local]
        # Label the first `take` picks (< k only in a final, partial round).
        keep = jnp.arange(k) < take
        new_labeled = state.labeled.at[jnp.where(keep, picked, num_pool)].set(True, mode="drop")
        pos = jnp.where(keep, state.num_labeled + jnp.arange(k), capacity)
        order = state.order.at[pos].set(picked, mode="drop")
        new_state = state._replace(
            labeled=new_labeled,
            order=order,
            num_labeled=state.num_labeled + take.astype(jnp.int32),
            strategy_state=jax.tree.map(
                lambda new, old: jnp.where(diverged, old, new),
                strategy.update(state.strategy_state, cand, outputs),
                state.strategy_state,
            ),
        )
        return new_state, picked

    return Engine(
        init=init,
        fit=phases.fit,
        evaluate=phases.evaluate,
        score=ex.wrap(score_seed, (0, None, None), shard_data=True),
        score_first=(
            ex.wrap(score_pool, (0, None, None), shard_data=True)
            if strategy.score_pool_first
            else None
        ),
        select=ex.wrap(select_seed, (0, None, 0, 0, 0, 0)),  # take: per lane
        plan=plan,
        executor=ex,
        train=phases.train,
        schedule=schedule,
        needs=strategy.needs,
        chunks=phases.chunks,
    )


def _block(tree):
    return jax.block_until_ready(tree)


def lanes_of(engine: Engine, seeds) -> Lanes:
    """``seeds`` as lanes: a :class:`~jaxal.grid.Lanes` as is, or seeds without a grid."""
    if isinstance(seeds, Lanes):
        return seeds
    return Lanes.of(seeds, engine.train or TrainSettings())


def init_state(engine: Engine, seeds, data: train_lib.Data) -> SeedState:
    """Round-0 state of every lane: initial pool and model initialisation.

    ``seeds``: the run's :class:`~jaxal.grid.Lanes`, or an array of seeds (no
    grid). A lane's keys come from its seed alone."""
    lanes = lanes_of(engine, seeds)
    keys = parallel.put_seeds(seed_keys(lanes.seed), engine.placement)
    hparams = parallel.put_seeds(
        {k: jnp.asarray(v) for k, v in lanes.hparams().items()}, engine.placement
    )
    state = engine.init(keys, hparams, data)
    schedule = _initial_schedule(engine, len(lanes))
    return _block(state._replace(schedule=parallel.put_seeds(schedule, engine.placement)))


def _initial_schedule(engine: Engine, num_lanes: int) -> dict:
    """Per lane: the query size to request next, the previous round's rate
    metric, the best stop metric, rounds without improvement, stopped."""
    sch = engine.schedule or ScheduleSettings()
    k0 = sch.k0 or engine.plan.query_size
    return {
        "k": jnp.full((num_lanes,), k0, jnp.int32),
        "prev": jnp.full((num_lanes,), jnp.nan, jnp.float32),
        "best": jnp.full((num_lanes,), -jnp.inf, jnp.float32),
        "bad": jnp.zeros((num_lanes,), jnp.int32),
        "stopped": jnp.zeros((num_lanes,), bool),
    }


def _schedule_step(engine: Engine, schedule: dict, metrics: dict, labels: np.ndarray):
    """After a round's evaluation: who stops, and how many labels each lane takes.

    The Sherbrooke report's loop (:mod:`jaxal.labeling_rate`): with
    ``stop.patience = P``, a lane stops once ``P`` rounds in a row have not
    beaten its best ``stop.metric`` by more than ``min_delta`` (checked before
    querying: it labels nothing more); with ``labeling_rate.schedule=adaptive``
    the next query size is Algorithm 1's, from the last two rounds'
    ``labeling_rate.metric``, at most ``query_size``. Host numpy, per lane.

    Returns ``(new schedule, take int32[L], active bool[L], stopped_now bool[L])``.
    """
    plan, sch = engine.plan, engine.schedule or ScheduleSettings()
    s = {k: parallel.to_host(v) for k, v in schedule.items()}
    active = ~s["stopped"]
    stop_now = np.zeros_like(active)
    best, bad = s["best"], s["bad"]
    if sch.patience is not None:
        a = np.asarray(metrics[sch.stop_metric], np.float32)
        improve = np.isfinite(a) & (a > best + np.float32(sch.min_delta))
        best = np.where(active & improve, a, best).astype(np.float32)
        bad = np.where(active, np.where(improve, 0, bad + 1), bad).astype(np.int32)
        stop_now = active & (bad >= sch.patience)
    k, prev = s["k"], s["prev"]
    if sch.adaptive:
        q = plan.query_size
        rate = labeling_rate.LabelingRateSettings(sch.epsilon, sch.g, sch.R or q, sch.k0 or q)
        a = np.asarray(metrics[sch.rate_metric], np.float32)
        k = np.where(active, labeling_rate.next_query_sizes(prev, a, k, rate, q), k)
        prev = np.where(active, a, prev).astype(np.float32)
    take = np.where(active & ~stop_now, np.minimum(k, plan.budget - labels), 0).astype(np.int32)
    new = {
        "k": k.astype(np.int32),
        "prev": prev,
        "best": best,
        "bad": bad,
        "stopped": s["stopped"] | stop_now,
    }
    return new, take, active, stop_now


def rounds(
    engine: Engine,
    seeds: np.ndarray,
    data: train_lib.Data,
    *,
    state: SeedState | None = None,
    start_round: int = 0,
    in_round: InRound | None = None,
) -> Iterator[tuple[RoundRecord, SeedState]]:
    """Run the rounds of one strategy for all seeds, yielding after each.

    Round r trains on the current labeled set and evaluates; unless it is the
    last round, it then scores the pool and labels ``plan.take(labeled)``
    points. Yields ``(record, state)`` with the state the next round starts
    from (a checkpoint boundary). To resume, pass that ``state`` and
    ``start_round`` = the next round. ``in_round``: train each round in pieces
    of ``in_round.chunk`` epochs, calling its ``after`` between pieces (a
    checkpoint of the training carry) and starting a round from its saved
    carry when ``restore`` has one.
    """
    plan = engine.plan
    if state is None:
        state = init_state(engine, seeds, data)
    if state.schedule is None:  # a state built without init_state
        state = state._replace(
            schedule=parallel.put_seeds(
                _initial_schedule(engine, state.num_labeled.shape[0]), engine.placement
            )
        )
    for r in range(start_round, plan.num_rounds):
        if bool(np.all(parallel.to_host(state.schedule["stopped"]))):
            return  # every lane has stopped (stop.patience)
        interrupt.check()  # SIGTERM / Ctrl-C: stop before the next round
        rr = jnp.int32(r)
        t0 = time.perf_counter()
        if in_round is None:
            variables, fm = _block(engine.fit(state, rr, data))
        else:
            variables, fm = _fit_in_pieces(engine, state, rr, data, in_round)
        t1 = time.perf_counter()
        evaluated = engine.evaluate(variables, data)
        acc, nll, val_acc, val2_acc, *replicas = (parallel.to_host(a) for a in evaluated)
        t2 = time.perf_counter()
        if replicas:  # train.retrains = R > 1: replica 0 is the model that scores
            variables = variables[0]
        state = state._replace(variables=variables)
        labels = parallel.to_host(state.num_labeled).astype(np.int64)
        metrics = {"test_accuracy": acc, "val_accuracy": val_acc, "val2_accuracy": val2_acc}
        schedule, take, active, stopped = _schedule_step(engine, state.schedule, metrics, labels)
        state = state._replace(schedule=parallel.put_seeds(schedule, engine.placement))
        t_score = t_select = 0.0
        scored = np.zeros_like(labels)
        if r < plan.num_acquisitions and take.any():
            first = r == 0 and engine.score_first is not None
            score = engine.score_first if first else engine.score
            cand, outputs = _block(score(state, rr, data))
            t3 = time.perf_counter()
            take_dev = parallel.put_seeds(jnp.asarray(take), engine.placement)
            state, _ = _block(engine.select(state, rr, cand, outputs, take_dev, fm.diverged))
            t_score, t_select = t3 - t2, time.perf_counter() - t3
            if engine.needs is None or any(engine.needs):  # random scores nothing
                unlabeled = plan.num_pool - labels
                n = unlabeled if cand is None else np.minimum(cand.shape[-1], unlabeled)
                scored = np.where(take > 0, n, 0)
        else:
            take = np.zeros_like(take)
        if r >= plan.num_acquisitions:
            stopped = np.zeros_like(stopped)  # the last round: nothing left to stop
        rec = RoundRecord(
            round=r,
            num_labeled=int(labels[active].max()),
            test_accuracy=acc,
            test_nll=nll,
            train_epochs=parallel.to_host(fm.epochs),
            train_accuracy=parallel.to_host(fm.train_accuracy),
            diverged=parallel.to_host(fm.diverged),
            train_seconds=t1 - t0,
            eval_seconds=t2 - t1,
            score_seconds=t_score,
            select_seconds=t_select,
            labels=labels,
            val_accuracy=val_acc,
            val2_accuracy=val2_acc,
            queried=take,
            active=active,
            stopped=stopped,
            scored=scored,
            test_accuracy_replicas=replicas[0] if replicas else None,
        )
        yield rec, state


def _fit_in_pieces(engine: Engine, state: SeedState, rr: Array, data, in_round: InRound):
    """One round's fit in pieces of ``in_round.chunk`` epochs, from a saved
    carry if there is one; the carry goes to ``in_round.after`` after each
    piece but the last."""
    chunks, r = engine.chunks, int(rr)
    carry = chunks.start(state, rr, data)
    saved = in_round.restore(r, carry)
    if saved is not None:
        carry = saved
    epochs = (engine.train or TrainSettings()).epochs

    def finished(c):
        return parallel.to_host(c.stop) | (parallel.to_host(c.epoch) >= epochs)

    done = finished(carry)
    while not bool(np.all(done)):
        # chunk boundaries at multiples of `chunk` epochs, wherever a resume starts
        low = int(np.min(np.where(done, epochs, parallel.to_host(carry.epoch))))
        until = min(epochs, (low // in_round.chunk + 1) * in_round.chunk)
        carry = _block(chunks.run_until(carry, jnp.int32(until), state, rr, data))
        done = finished(carry)
        stopping = interrupt.requested() is not None  # SIGTERM / Ctrl-C during the piece
        if stopping or not bool(np.all(done)):
            in_round.after(r, carry, stopping)  # saves when due, always when stopping
        interrupt.check()
    return _block(chunks.finish(carry))


def run_rounds(
    engine: Engine,
    seeds: np.ndarray,
    data: train_lib.Data,
    *,
    on_round: Callable[[RoundRecord, SeedState], None] | None = None,
    state: SeedState | None = None,
    start_round: int = 0,
) -> tuple[SeedState, list[RoundRecord]]:
    """:func:`rounds` to the end: ``(final state, one RoundRecord per round run)``,
    calling ``on_round(record, state)`` after each round."""
    records = []
    if state is None:
        state = init_state(engine, seeds, data)
    for rec, state in rounds(engine, seeds, data, state=state, start_round=start_round):  # noqa: B020
        records.append(rec)
        if on_round is not None:
            on_round(rec, state)
    return state, records


def acquisition_rounds(order: np.ndarray, plan: Plan) -> np.ndarray:
    """Round in which each slot of ``order`` was labeled (0 = initial pool, -1 = empty)."""
    pos = np.arange(order.shape[-1])
    init, k = plan.initial_size, plan.query_size
    rounds_ = np.where(pos < init, 0, (pos - init) // k + 1)
    return np.where(order >= 0, rounds_, -1)
