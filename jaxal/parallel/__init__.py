"""Seeds over devices: the mesh (:mod:`.mesh`), moving state (:mod:`.transfer`)
and the one seed executor (:mod:`.execute`). All mesh code lives here."""

from jaxal.parallel.execute import (
    MODES,
    SeedExecutor,
    SeedRunner,
    map_seeds,
    shard_pool_rows,
)
from jaxal.parallel.mesh import (
    SINGLE_DEVICE,
    Placement,
    cpu_cores,
    initialize_distributed,
    local_seeds,
    make_placement,
    resolve_seed_execution,
    resolve_seed_threads,
    resolve_step_loop,
)
from jaxal.parallel.transfer import (
    device_of,
    local_copy,
    put_seeds,
    put_shared,
    split_seeds,
    stack_seeds,
    to_host,
    tree_index,
    tree_stack,
)

__all__ = [
    "MODES",
    "SINGLE_DEVICE",
    "Placement",
    "SeedExecutor",
    "SeedRunner",
    "cpu_cores",
    "device_of",
    "initialize_distributed",
    "local_copy",
    "local_seeds",
    "make_placement",
    "map_seeds",
    "put_seeds",
    "put_shared",
    "resolve_seed_execution",
    "resolve_seed_threads",
    "resolve_step_loop",
    "shard_pool_rows",
    "split_seeds",
    "stack_seeds",
    "to_host",
    "tree_index",
    "tree_stack",
]
