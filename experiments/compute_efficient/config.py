"""Compute-efficient active learning: Németh & Matuszka's study (issue 11).

Németh & Matuszka, *Compute-Efficient Active Learning* (aiMotive;
``/work/shared/papers/compute-efficient-nemeth.txt``). Their Algorithm 1 is
``history_subsample`` (:func:`jaxal.strategies.wrappers.history_subsample`): the
first round scores the whole unlabeled pool; every later round draws ``m``
candidates with P = softmax(last known score) and re-scores only them. The
protocol of Sec. 3.1 and where jaxal's keys put it:

* MC-dropout entropy and variation ratios (``entropy(source=mc)``,
  ``variation_ratios``; ``mc.samples``: the authors' code draws 64 passes for
  entropy and 128 for varR), sampling probabilities ``softmax`` of the scores
  (``temperature = 1``);
* "retraining and sampling iterations T = 10" (``num_rounds = 10``: ten
  acquisitions; jaxal also trains and evaluates on the final labeled set);
* "Each model within a retraining iteration underwent training three times
  with the same dataset using different random seeds, and the results were
  averaged" (``train.retrains = 3``: an [R] axis, replica 0 scores the pool --
  see ``jaxal/loop.py``);
* a class-balanced random initial pool shared by every strategy
  (``initial.strategy = class_balanced``; jaxal's keys never depend on the
  strategy);
* candidate pools m in {2,500; 5,000; 10,000} ("The α subsampling ratio was set
  to 2500, 5000, and 10000"); baselines: random and the acquisition function on
  the whole pool; added here: ``subsample`` (m uniform candidates, no history),
  the ablation that separates "fewer candidates" from "candidates drawn by
  their history";
* MNIST (60k): their CNN (``models.py`` here), no augmentation, initial pool
  1 % or 5 %, 600 labels per round (total acquisition 10 %);
* CIFAR-10 (50k): VGG-11 with batch norm, random brightness/contrast and
  horizontal flip, initial pool 1 % or 25 %, total acquisition 10 % or 25 %
  (500 or 1,250 per round).

Training follows the authors' code (``src/active_learner.py``,
``src/models/model_base.py``, ``src/main_train.py``): Adam at 1e-3, batch 64,
up to 250 epochs with early stopping (patience 15) on the validation accuracy of
100 class-balanced points held out of the pool, keeping the best epoch's
weights (``train.early_stop.patience``, ``dataset.val_size = 100``).

Variants (``--config=experiments/compute_efficient/config.py:<variant>``):
  smoke, smoke_varr                         bundled MNIST-5k, an MLP; CPU, minutes
  mnist_{entropy,varr}_is{1,5}               MNIST (tfds), the paper's CNN; GPU
  cifar10_{entropy,varr}_is{1,25}_tas{10,25} CIFAR-10 (tfds), VGG-11-BN; GPU
"""

from jaxal.config import base_config

MODEL = "experiments.compute_efficient.models:mnist_cnn"  # the paper's MNIST CNN
PAPER_M = (2500, 5000, 10000)  # candidate pool sizes of Sec. 3.1
# Smoke: the paper's m as fractions of MNIST's 60,000 (4.2 %, 8.3 %, 16.7 %),
# on the smoke pool of 3,900: 162, 325, 650 -> 160, 320, 640.
SMOKE_M = (160, 320, 640)
# The acquisition functions: (label, strategy name, base_params for the wrappers,
# MC passes in the authors' code).
AFS = {
    "entropy": ("entropy(source=mc)", "entropy", {"source": "mc"}, 64),
    "varr": ("variation_ratios", "variation_ratios", {}, 128),
}
MNIST_IS = {"1": 60, "5": 300}  # initial pool per class: 600 or 3,000 (1 %, 5 % of 60k)
CIFAR_IS = {"1": 50, "25": 1250}  # per class: 500 or 12,500 labels
CIFAR_TAS = {"10": 500, "25": 1250}  # labels per round: 5,000 or 12,500 in 10 rounds
VARIANTS = (
    "smoke",
    "smoke_varr",
    *(f"mnist_{af}_is{i}" for af in AFS for i in MNIST_IS),
    *(f"cifar10_{af}_is{i}_tas{t}" for af in AFS for i in CIFAR_IS for t in CIFAR_TAS),
)


def strategies(af: str, ms, m_uniform: int) -> str:
    """random, the AF on the whole pool, history_subsample at every m, subsample."""
    full, base, _, _ = AFS[af]
    hist = [f"hist_m{m}=history_subsample(base={base},m={m})" for m in ms]
    return ",".join(
        ["random", full, *hist, f"uniform_m{m_uniform}=subsample(base={base},m={m_uniform})"]
    )


# _chunk: scoring runs in chunks of `score_batch_size` rows and pads the last one,
# so m candidates cost ceil(m / chunk) whole chunks: with jaxal's default of 1024,
# m = 160 would cost as much as 1024 rows. A chunk that divides every m (and
# nearly the pool) makes the compute proportional to the points scored.


def _paper_training(c, epochs: int = 250, patience: int = 15):
    """Adam 1e-3, batch 64, early stopping on 100 validation points (their code)."""
    c.train.optimizer = "adam"
    c.train.learning_rate = 1e-3
    c.train.batch_size = 64
    c.train.epochs = epochs
    c.train.early_stop.patience = patience
    c.dataset.val_size = 100
    c.train.reinit = True  # their reset_network() before every training
    c.train.retrains = 3


def get_config(arg: str | None = None):
    variant = arg or "smoke"
    if variant not in VARIANTS:
        raise ValueError(
            f"unknown variant {variant!r} of experiments/compute_efficient/config.py; "
            f"allowed: {', '.join(VARIANTS)}"
        )
    c = base_config()
    c.initial.strategy = "class_balanced"
    c.budget = None
    c.num_rounds = 10  # T
    if variant.startswith("smoke"):
        af = "varr" if variant == "smoke_varr" else "entropy"
        # MNIST-5k: 4,000 train -> 100 validation + a pool of 3,900; 1,000 test.
        c.dataset.name = "mnist5k"
        c.dataset.normalize = "none"  # their MNIST inputs: pixels / 255
        # An MLP, not their CNN: the CNN trains at ~80 ms a step on 2 CPU cores,
        # ~50 min for this smoke with R = 3 (the full variants use the CNN).
        c.model.name = "mlp"
        c.model.hidden = (256,)
        c.model.dropout = 0.5
        c.num_seeds = 2
        _paper_training(c, epochs=30, patience=5)
        c.initial.per_class = 4  # 40 labels, ~1 % of the pool (their 1 % IS)
        c.query_size = 40  # ~1 % per round, as 600 of 60,000
        c.strategy = strategies(af, SMOKE_M, SMOKE_M[1])
        c.strategy_params.base_params = dict(AFS[af][2])
        c.mc.samples = 32  # their 64 (entropy) / 128 (varR), cut for the CPU
        c.mc.mode = "full"  # every pass runs the whole network, as theirs
        c.score_batch_size = SMOKE_M[0]  # see _chunk
        return c
    # Full variants: GPU; tfds data prepared beforehand (no download here).
    c.dataset.download = False
    c.num_seeds = 3
    _paper_training(c)
    name, af, *sizes = variant.split("_")
    is_ = sizes[0].removeprefix("is")
    c.strategy = strategies(af, PAPER_M, PAPER_M[1])
    c.strategy_params.base_params = dict(AFS[af][2])
    c.mc.samples = AFS[af][3]
    c.score_batch_size = PAPER_M[0]  # see _chunk: 60,000 and 50,000 are multiples too
    if name == "mnist":
        c.dataset.name = "mnist"
        c.dataset.normalize = "none"
        c.model.name = MODEL
        c.model.dropout = 0.5
        c.mc.mode = "full"
        c.initial.per_class = MNIST_IS[is_]
        c.query_size = 600
        return c
    c.dataset.name = "cifar10"
    c.dataset.normalize = "standardize"  # their A.Normalize() (ImageNet statistics)
    # VGG-11 with batch norm. Their head (torchvision vgg11_bn features, average
    # pool, Dropout(0.5)-Linear(512)-BatchNorm1d-ReLU-Linear(10)) has one more
    # hidden layer than jaxal's vgg11 (average pool, Dropout, Dense(C)); their
    # features are ImageNet-pretrained, these are trained from scratch. All dropout
    # is in the head: MC "head" mode is exact (and is what their code does).
    c.model.name = "vgg11"
    c.model.dropout = 0.5
    c.mc.mode = "head"
    # albumentations RandomBrightnessContrast(brightness_limit=0.1,
    # contrast_limit=0.1) + HorizontalFlip: the shift of 0.1 of the pixel range
    # is ~0.4 pool stds per channel (CIFAR-10 stds 0.247/0.243/0.262).
    c.train.augment.brightness = 0.4
    c.train.augment.contrast = 0.1
    c.train.augment.flip = True
    c.initial.per_class = CIFAR_IS[is_]
    c.query_size = CIFAR_TAS[sizes[1].removeprefix("tas")]
    return c
