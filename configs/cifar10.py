"""ResNet-18 on CIFAR-10 (tfds): the standard deep-AL benchmark setting
(random, entropy, margin, Core-Set and BADGE; SGD, cosine schedule, crop+flip).

Needs the dataset (``pip install 'jaxal[tfds]'`` and
``--config.dataset.download=True`` on a machine with internet, or a prepared
``--config.dataset.data_dir``) and a GPU for sensible speed: on a 2-core CPU
ResNet-18 trains at ~60 images/s, so the full variant would take weeks; not
measured on a GPU yet.

    python -m jaxal --config=configs/cifar10.py --workdir=runs/cifar10
"""

from jaxal.config import base_config


def get_config(arg: str | None = None):
    c = base_config()
    c.dataset.name = "cifar10"
    c.model.name = "resnet18"
    c.strategy = "random,entropy,margin,coreset,badge"
    c.num_seeds = 3
    c.initial.strategy = "random"
    c.initial.size = 1000
    c.query_size = 1000
    c.budget = 10000
    c.train.optimizer = "sgd"
    c.train.learning_rate = 0.1
    c.train.momentum = 0.9
    c.train.weight_decay = 5e-4
    c.train.schedule = "cosine"
    c.train.epochs = 100
    c.train.batch_size = 128
    c.train.augment.crop_padding = 4
    c.train.augment.flip = True
    if arg == "smoke":
        c.model.width = 8
        c.dataset.pool_size = 500
        c.initial.size = 50
        c.query_size = 50
        c.budget = 150
        c.train.epochs = 1
        c.num_seeds = 2
    elif arg not in (None, ""):
        raise ValueError(f"unknown variant {arg!r} of configs/cifar10.py; allowed: smoke")
    return c
