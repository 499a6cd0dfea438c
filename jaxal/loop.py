"""The active-learning round loop: fit -> evaluate -> score -> select -> label.

The per-seed state is a fixed-shape pytree (:class:`SeedState`); the four
phases are pure per-seed functions that :mod:`jaxal.parallel` runs over a
leading ``[S]`` seed axis. The Python loop around them only times phases,
collects metrics and reports progress. Shapes never change between rounds, so
each phase compiles once per run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import parallel
from jaxal import train as train_lib
from jaxal.models.base import Model
from jaxal.predict import make_predict
from jaxal.rng import Purpose, derive, seed_keys
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


class RoundRecord(NamedTuple):
    """Host-side results of one round for all seeds (arrays are ``[S]``)."""

    round: int
    num_labeled: int
    test_accuracy: np.ndarray
    test_nll: np.ndarray
    train_epochs: np.ndarray
    train_accuracy: np.ndarray
    train_seconds: float
    eval_seconds: float
    score_seconds: float
    select_seconds: float


def initial_pool(key: Array, y_pool: Array, cfg, num_classes: int, capacity: int):
    """``(labeled bool[N], order int32[capacity], num_labeled)`` of the initial pool."""
    n = y_pool.shape[0]
    if cfg.strategy == "class_balanced":
        per = int(cfg.per_class)
        u = jax.random.uniform(key, (n,))
        picks = jax.vmap(lambda c: masked_top_k(u, y_pool != c, per))(jnp.arange(num_classes))
        picks = picks.T.reshape(-1)  # interleave classes: c0, c1, ..., c0, c1, ...
    else:
        picks = masked_top_k(jax.random.uniform(key, (n,)), jnp.zeros(n, bool), int(cfg.size))
    size = picks.shape[0]
    labeled = jnp.zeros(n, bool).at[picks].set(True)
    order = jnp.full((capacity,), -1, jnp.int32).at[:size].set(picks)
    return labeled, order, jnp.int32(size)


class TrainPhases(NamedTuple):
    """The strategy-independent phases, shared by every strategy of a run (so
    they compile once per run, not once per strategy)."""

    fit: Callable  # (state, round, data) -> (variables, FitMetrics)
    evaluate: Callable  # (variables, data) -> (acc, nll)
    seed_execution: str
    placement: parallel.Placement


class Engine(NamedTuple):
    """The per-seed phases of a run, already wrapped for the seed axis."""

    init: Callable  # (keys [S], data) -> SeedState [S]
    fit: Callable  # (state, round, data) -> (variables, FitMetrics)
    evaluate: Callable  # (variables, data) -> (acc, nll)
    score: Callable  # (state, round, data) -> (candidates | None, Outputs)
    select: Callable  # (state, round, candidates, outputs, take) -> (state, picked [k])
    seed_execution: str
    placement: parallel.Placement


def make_train_phases(
    config, model: Model, placement: parallel.Placement = parallel.SINGLE_DEVICE
) -> TrainPhases:
    """Fit (re-initialising or warm-starting the model) and evaluate, over seeds."""
    eval_bs = int(config.train.eval_batch_size)
    eval_fn = train_lib.make_evaluate(model, eval_bs)
    reinit = bool(config.train.reinit)
    mode = parallel.resolve_seed_execution(config.seed_execution, config.model.name)
    step_loop = parallel.resolve_step_loop(config.train.step_loop, config.model.name)

    def start_variables(state: SeedState, round_: Array, data: train_lib.Data):
        if reinit:
            return model.init(derive(state.key, round_, Purpose.MODEL_INIT), data.x_pool[:1])
        return state.variables

    def ctx(state: SeedState, round_: Array):
        return state.order, state.num_labeled, derive(state.key, round_, Purpose.TRAIN)

    def evaluate_seed(variables, data: train_lib.Data):
        return eval_fn(variables, data.x_test, data.y_test)

    if step_loop == "device":
        fit_fn = train_lib.make_fit(model, config.train, eval_bs)

        def fit_seed(state: SeedState, round_: Array, data: train_lib.Data):
            return fit_fn(start_variables(state, round_, data), *ctx(state, round_), data)

        fit = parallel.over_seeds(fit_seed, mode, (0, None, None), placement)
    else:
        fit = _host_fit_over_seeds(
            train_lib.make_fit_parts(model, config.train, eval_bs),
            config.train.batch_size,
            mode,
            start_variables,
            ctx,
            placement,
        )
    return TrainPhases(
        fit=fit,
        evaluate=parallel.over_seeds(evaluate_seed, mode, (0, None), placement),
        seed_execution=mode,
        placement=placement,
    )


def _host_fit_over_seeds(
    parts: train_lib.FitParts,
    batch_size: int,
    mode: str,
    start_variables: Callable,
    ctx: Callable,
    placement: parallel.Placement,
) -> Callable:
    """The host step loop (``train.step_loop = host``) over the seed axis."""
    seed_axes = (0, 0, 0, 0, None)  # carry/variables, order, num_labeled, key, data
    if mode == "vmap":
        wrap = lambda f, axes: jax.jit(jax.vmap(f, in_axes=axes))  # noqa: E731
    else:
        wrap = lambda f, axes: jax.jit(f)  # noqa: E731
    jparts = train_lib.FitParts(
        start=wrap(parts.start, seed_axes),
        begin_epoch=wrap(train_lib.masked(parts.begin_epoch), seed_axes),
        step=wrap(train_lib.masked(parts.step), (0, None, 0, 0, 0, None)),
        end_epoch=wrap(train_lib.masked(parts.end_epoch), seed_axes),
        finish=wrap(parts.finish, (0,)),
    )
    driver = train_lib.host_fit(jparts, int(batch_size))
    first = wrap(lambda s, r, d: (start_variables(s, r, d), *ctx(s, r)), (0, None, None))
    run = parallel.SeedRunner(placement.threads)

    def fit(state: SeedState, round_: Array, data: train_lib.Data):
        if mode == "vmap":
            return driver(*first(state, round_, data), data)
        seed_states = parallel.split_seeds(state, placement)

        def one(i):
            seed_state = seed_states[i]
            if placement.mesh is not None:
                seed_data = parallel.local_copy(data, parallel.device_of(seed_state))
            else:
                seed_data = data
            return driver(*first(seed_state, round_, seed_data), seed_data)

        return parallel.stack_seeds(run(one, len(seed_states)), placement)

    return fit


def make_engine(
    config,
    model: Model,
    strategy: Strategy,
    num_pool: int,
    num_classes: int,
    capacity: int,
    phases: TrainPhases | None = None,
    placement: parallel.Placement = parallel.SINGLE_DEVICE,
) -> Engine:
    """Build the per-seed phases of one strategy's run and wrap them for S seeds.

    Args:
      phases: fit/evaluate shared with other strategies of the same run
        (built here when ``None``).
    """
    k = int(config.query_size)
    phases = phases or make_train_phases(config, model, placement)
    predict = make_predict(
        model,
        strategy.needs,
        samples=int(config.mc.samples),
        mode=config.mc.mode,
        chunk=int(config.score_batch_size),
    )

    def init_seed(key: Array, data: train_lib.Data) -> SeedState:
        labeled, order, n = initial_pool(
            derive(key, 0, Purpose.INITIAL_POOL),
            data.y_pool,
            config.initial,
            num_classes,
            capacity,
        )
        variables = model.init(derive(key, 0, Purpose.MODEL_INIT), data.x_pool[:1])
        return SeedState(key, labeled, order, n, variables, strategy.init(num_pool))

    def score_seed(state: SeedState, round_: Array, data: train_lib.Data):
        cand = strategy.propose(
            derive(state.key, round_, Purpose.PROPOSE), state.labeled, state.strategy_state
        )
        x = data.x_pool if cand is None else data.x_pool[cand]
        return cand, predict(state.variables, x, derive(state.key, round_, Purpose.SCORE))

    def select_seed(state: SeedState, round_: Array, cand, outputs: Outputs, take: Array):
        labeled = state.labeled if cand is None else state.labeled[cand]
        local = strategy.select(derive(state.key, round_, Purpose.SELECT), outputs, labeled, k)
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
            strategy_state=strategy.update(state.strategy_state, cand, outputs),
        )
        return new_state, picked

    mode, placement = phases.seed_execution, phases.placement
    return Engine(
        init=parallel.over_seeds(init_seed, mode, (0, None), placement),
        fit=phases.fit,
        evaluate=phases.evaluate,
        score=parallel.over_seeds(score_seed, mode, (0, None, None), placement, shard_data=True),
        select=parallel.over_seeds(select_seed, mode, (0, None, 0, 0, None), placement),
        seed_execution=mode,
        placement=placement,
    )


def _block(tree):
    return jax.block_until_ready(tree)


def run_rounds(
    engine: Engine,
    seeds: np.ndarray,
    data: train_lib.Data,
    *,
    init_size: int,
    query_size: int,
    budget: int,
    on_round: Callable[[RoundRecord, SeedState], None] | None = None,
    state: SeedState | None = None,
    start_round: int = 0,
) -> tuple[SeedState, list[RoundRecord]]:
    """Run every round of one strategy for all seeds.

    Round r trains on the current labeled set and evaluates; unless it is the
    last round, it then scores the pool and labels ``min(k, budget - labeled)``
    points. ``on_round(record, state)`` is called after each round with the
    state the next round starts from (a checkpoint boundary). To resume, pass
    that ``state`` and ``start_round`` = the next round. Returns the final
    state and one :class:`RoundRecord` per round run.
    """
    if state is None:
        keys = parallel.put_seeds(seed_keys(seeds), engine.placement)
        state = _block(engine.init(keys, data))
    num_acq = -(-(budget - init_size) // query_size)
    records = []
    for r in range(start_round, num_acq + 1):
        rr = jnp.int32(r)
        t0 = time.perf_counter()
        variables, fm = _block(engine.fit(state, rr, data))
        t1 = time.perf_counter()
        acc, nll = _block(engine.evaluate(variables, data))
        t2 = time.perf_counter()
        state = state._replace(variables=variables)
        n_now = int(parallel.to_host(state.num_labeled)[0])
        t_score = t_select = 0.0
        if r < num_acq:
            take = jnp.int32(min(query_size, budget - n_now))
            cand, outputs = _block(engine.score(state, rr, data))
            t3 = time.perf_counter()
            state, _ = _block(engine.select(state, rr, cand, outputs, take))
            t_score, t_select = t3 - t2, time.perf_counter() - t3
        rec = RoundRecord(
            round=r,
            num_labeled=n_now,
            test_accuracy=parallel.to_host(acc),
            test_nll=parallel.to_host(nll),
            train_epochs=parallel.to_host(fm.epochs),
            train_accuracy=parallel.to_host(fm.train_accuracy),
            train_seconds=t1 - t0,
            eval_seconds=t2 - t1,
            score_seconds=t_score,
            select_seconds=t_select,
        )
        records.append(rec)
        if on_round is not None:
            on_round(rec, state)
    return state, records


def acquisition_rounds(order: np.ndarray, init_size: int, query_size: int) -> np.ndarray:
    """Round in which each slot of ``order`` was labeled (0 = initial pool, -1 = empty)."""
    pos = np.arange(order.shape[-1])
    rounds = np.where(pos < init_size, 0, (pos - init_size) // query_size + 1)
    return np.where(order >= 0, rounds, -1)
