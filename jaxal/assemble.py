"""The one assembler: a config (plus, optionally, your own dataset or model)
becomes a :class:`Run` — dataset on device, model, strategies, placement,
shared training phases and one engine per strategy.

The CLI (:func:`jaxal.experiment.run_experiment`), the tests and the benchmarks
all build runs here. Below this module nothing reads a ``ConfigDict``: the
engine takes typed settings (:mod:`jaxal.settings`) and the run's
:class:`~jaxal.settings.Plan` of sizes, computed once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxal import config as config_lib
from jaxal import data as data_lib
from jaxal import parallel
from jaxal import strategies as strategies_lib
from jaxal.grid import Lanes
from jaxal.loop import Engine, TrainPhases, make_engine, make_initial_state, make_train_phases
from jaxal.models.base import Model
from jaxal.settings import Plan, RunSettings
from jaxal.strategies.base import Strategy
from jaxal.train import Data


@dataclasses.dataclass
class Run:
    """Everything a run needs, built once from a config.

    Attributes:
      settings: the typed settings.
      plan: every derived size (pool, classes, initial pool, k, budget, rounds).
      dataset: the host dataset (after ``config.dataset`` options).
      data: the dataset as device arrays, replicated over the mesh.
      model: the model adapter (an ensemble when ``ensemble_size > 1``).
      executor: how the seed axis runs (mode and placement).
      strategies: label -> strategy, in run order.
      phases: fit/evaluate shared by every strategy (they compile once).
    """

    settings: RunSettings
    plan: Plan
    dataset: data_lib.Dataset
    data: Data
    model: Model
    executor: parallel.SeedExecutor
    strategies: dict[str, Strategy]
    phases: TrainPhases
    # What the initial-pool strategy reads (features, scores, file rows): computed
    # once per run by `prepare_initial`, before the first engine's init.
    initial_inputs: Any = None
    _engines: dict = dataclasses.field(default_factory=dict, repr=False)
    _init_state: Any = dataclasses.field(default=None, repr=False)

    @property
    def seeds(self) -> np.ndarray:
        return np.asarray(self.settings.seeds)

    @property
    def lanes(self) -> Lanes:
        """The state's leading axis: grid settings x seeds (just the seeds without a grid)."""
        return Lanes.of(self.seeds, self.settings.train, self.settings.grid)

    @property
    def placement(self) -> parallel.Placement:
        return self.executor.placement

    def prepare_initial(self, cache_dir: str | None = None, *, log=None, write: bool = True):
        """The initial pools' inputs (:func:`jaxal.initial.prepare`), once per run.

        Self-supervised encoders are trained here (host side, before any seed's
        program runs) or read from ``cache_dir``; without a ``cache_dir`` (e.g.
        an engine built straight from :func:`assemble`) nothing is cached.
        """
        if self.initial_inputs is None:
            from jaxal import initial as initial_lib

            backbone = self.model
            if backbone.members is not None:  # a SimCLR backbone is one member
                from jaxal import models as models_lib

                kwargs = dict(self.settings.model_kwargs)
                backbone = models_lib.get_model(
                    self.settings.model_name, self.plan.num_classes, **kwargs
                )
            # Dropout is off in SimCLR training (no dropout key): not part of the cache key.
            kept = {k: v for k, v in self.settings.model_kwargs if "dropout" not in k}
            self.initial_inputs = initial_lib.prepare(
                self.settings.initial,
                np.asarray(self.dataset.x_train),
                self.settings.num_seeds,
                cache_dir=cache_dir,
                model=backbone,
                model_id=f"{backbone.name}{kept}",
                write=write,
                log=log,
            )
        return self.initial_inputs

    def prepare_start(self, cache_dir: str | None = None, *, log=None, write: bool = True):
        """What every round starts from with ``train.init_from`` (:mod:`jaxal.pretrain`),
        once per run: the pretrained model (trained here, host side, before any
        seed's program runs, or read from ``cache_dir``) or a file's variables,
        placed like the dataset into ``self.data.init_variables``. ``None`` (and
        nothing done) without ``train.init_from``.
        """
        s = self.settings
        if s.init_from and self.data.init_variables is None:
            from jaxal import models as models_lib
            from jaxal import pretrain

            kwargs = dict(s.model_kwargs)
            variables = pretrain.prepare(
                s.init_from,
                s.pretrain,
                self.phases.train or s.train,
                model=self.model,
                make_model=lambda k: models_lib.get_model(s.model_name, k, **kwargs),
                model_id=f"{s.model_name}{sorted(kwargs.items())}",
                num_classes=self.plan.num_classes,
                x_pool=np.asarray(self.dataset.x_train),
                cache_dir=cache_dir,
                step_loop=(self.phases.train or s.train).step_loop,
                write=write,
                log=log,
                y_for_log=np.asarray(self.dataset.y_train),  # logged NMI only, never trained on
            )
            if self.placement.mesh is None:
                variables = jax.tree.map(jnp.asarray, variables)
            else:
                variables = parallel.put_shared(variables, self.placement)
            self.data = self.data._replace(init_variables=variables)
        return self.data.init_variables

    def engine(self, label: str) -> Engine:
        """The engine of strategy ``label`` (built on first use)."""
        if label not in self._engines:
            self.prepare_start()  # train.init_from: self.data carries the start variables
            s = self.settings
            self._engines[label] = make_engine(
                self.model,
                self.strategies[label],
                self.plan,
                self.phases,
                initial=s.initial,
                mc=s.mc,
                score_batch_size=s.score_batch_size,
                initial_inputs=self.prepare_initial(),
                schedule=s.schedule,
                initial_state=self._initial_state(),
            )
        return self._engines[label]

    def _initial_state(self):
        """The run's :func:`jaxal.loop.make_initial_state`, built once."""
        if self._init_state is None:
            s = self.settings
            self._init_state = make_initial_state(
                self.model, self.plan, s.initial, self.phases.executor, self.prepare_initial()
            )
        return self._init_state


def to_device(ds: data_lib.Dataset, placement=parallel.SINGLE_DEVICE) -> Data:
    """The dataset as device arrays: on the default device, or replicated on the mesh."""
    arrays = (ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.x_val, ds.y_val, *ds.val2())
    if placement.mesh is None:
        return Data(*(jnp.asarray(a) for a in arrays))
    return parallel.put_shared(Data(*arrays), placement)


def _as_model(model: Any, num_classes: int) -> Model:
    """A jaxal :class:`Model`, a Flax Linen module, or a ``factory(num_classes)``."""
    import flax.linen as nn

    from jaxal.models.user import from_module

    if isinstance(model, Model):
        return model
    if isinstance(model, nn.Module):
        return from_module(f"python:{type(model).__name__}", model)
    if callable(model):
        return _as_model(model(num_classes), num_classes)
    raise TypeError(
        f"model={model!r}: expected a jaxal Model, a Flax Linen module or a factory(num_classes)"
    )


def load_dataset(config, dataset: data_lib.Dataset | None = None) -> data_lib.Dataset:
    """``config.dataset`` loaded (or ``dataset`` given from Python), with its options.

    Raises:
      jaxal.config.ConfigError: a bad dataset option or file (one line).
    """
    try:
        if dataset is None:
            return data_lib.load(config.dataset)
        data_lib.validate(config.dataset)
        return data_lib.apply_options(dataset, config.dataset)
    except ValueError as e:  # bad options, a bad npz file, a tfds dataset not on disk
        raise config_lib.ConfigError(" ".join(str(e).split())) from None


def assemble(config, *, dataset: data_lib.Dataset | None = None, model: Any = None) -> Run:
    """Build a run from ``config``: validated, sized and placed; nothing compiled.

    Args:
      config: an experiment ``ConfigDict`` (:func:`jaxal.config.base_config`).
      dataset: your own :class:`~jaxal.data.Dataset` (e.g. from
        :func:`jaxal.data.from_arrays`) instead of ``config.dataset.name``;
        ``config.dataset`` options still apply.
      model: your own model instead of ``config.model``: a jaxal ``Model``, a
        Flax Linen module (``__call__(x, train) -> (logits, embedding)``), or
        ``factory(num_classes)`` returning one.

    Raises:
      jaxal.config.ConfigError: an invalid config, before anything compiles.
    """
    config_lib.validate(config, custom_model=model)
    settings = config_lib.settings(config)
    ds = load_dataset(config, dataset)
    plan = config_lib.validate_sizes(config, ds)
    try:
        if model is None:
            net = config_lib.build_model(settings, plan.num_classes)
        else:
            from jaxal.models.ensemble import ensemble

            net = _as_model(model, plan.num_classes)
            net = ensemble(net, settings.ensemble_size) if settings.ensemble_size > 1 else net
    except ValueError as e:  # e.g. a user factory that does not return a module
        raise config_lib.ConfigError(f"config.{' '.join(str(e).split())}") from None
    config_lib.check_model(config, net)  # MC dropout / head mode, from the built model
    if settings.init_from:  # train.init_from: a file's leaves and shapes, pretraining's needs
        from jaxal import pretrain

        try:
            pretrain.check_model(
                settings.init_from, settings.pretrain, net, ds.x_train, custom=model is not None
            )
        except ValueError as e:
            raise config_lib.ConfigError(" ".join(str(e).split())) from None
    ex = settings.execution
    try:
        lanes = settings.num_seeds * max(len(settings.grid), 1)  # grid settings x seeds
        placement = parallel.make_placement(lanes, ex.num_devices, ex.seed_threads)
    except ValueError as e:
        raise config_lib.ConfigError(f"config.num_devices: {e}") from None
    executor = parallel.SeedExecutor(
        parallel.resolve_seed_execution(ex.seed_execution, settings.model_name), placement
    )
    step_loop = parallel.resolve_step_loop(settings.train.step_loop, settings.model_name)
    train = dataclasses.replace(settings.train, step_loop=step_loop)
    strategies = {
        spec.label: strategies_lib.get(spec.name, **config_lib.strategy_kwargs(spec, plan.num_pool))
        for spec in settings.strategies
    }
    return Run(
        settings=settings,
        plan=plan,
        dataset=ds,
        data=to_device(ds, placement),
        model=net,
        executor=executor,
        strategies=strategies,
        phases=make_train_phases(net, train, executor, settings.grid),
    )
