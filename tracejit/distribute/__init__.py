"""Data-parallel training on MPI with Horovod's API: `import tracejit.distribute as hvd` reads
like `import horovod.tensorflow.keras as hvd`.

    tj.distribute.init()
    x, y = x[tj.distribute.rank()::tj.distribute.size()], ...      # this process's shard
    model.compile(optimizer=tj.distribute.DistributedOptimizer(tj.keras.optimizers.Adam()), ...)
    model.fit(x, y, callbacks=[tj.distribute.BroadcastGlobalVariablesCallback(0),
                               tj.distribute.MetricAverageCallback()])

launched as `mpiexec -n 4 python train.py`. Inside `tj.function` the gradient allreduce is
part of the compiled step. Without MPI (or before `init`) the process is alone: size 1.
"""
from . import callbacks  # noqa: F401
from .broadcast import broadcast_variables  # noqa: F401
from .callbacks import BroadcastGlobalVariablesCallback, MetricAverageCallback  # noqa: F401
from .collectives import (Average, ReduceOp, Sum, allgather, allreduce, broadcast,  # noqa: F401
                          grouped_allreduce)
from .optimizer import DistributedOptimizer  # noqa: F401
from .tape import DistributedGradientTape  # noqa: F401
from .world import (init, is_initialized, local_rank, local_size, rank, shutdown,  # noqa: F401
                    size)
