"""Data-parallel training over MPI: ``mpirun -n N convnet train --distributed`` trains one model
on N processes (ranks), with mpi4py (the optional extra ``convnet[mpi]``) over Open MPI.

Every rank runs the same loop on the same global batch (the same images in the same order, with
the same augmentation, as the loader's batches are a pure function of seed, epoch and batch
number). Each takes its `Group.share` of the batch, contiguous, the shares' sizes differing by
at most one image, and weights its mean loss by its share of the batch; after the backward pass
one Allreduce of one flat buffer sums the gradients, so every rank applies the gradient of the
global batch's mean loss and the ranks' weights stay equal. Batch norm normalises each rank's
share by its own statistics, and the running statistics are rank 0's, broadcast before every
step (PyTorch DDP's default). Evaluation splits each test batch the same way and sums the
confusion matrices and losses, so its figures are one process's.

`Group` is one process alone, the loop's default, which changes nothing; `MpiGroup` is a job's
ranks. Rank 0 alone writes the run folder; the checkpoint does not depend on N, so a run can be
resumed with another N.
"""

import hashlib
import os

import numpy as np

from .tensor import Tensor
from .errors import ConvnetError

INSTALL = "pip install 'convnet-numpy[mpi]' (and Open MPI: apt-get install openmpi-bin)"
# What Open MPI, MPICH/Hydra and PMIx put in each rank's environment: a process started by
# mpirun without --distributed must not train N independent copies into one folder.
LAUNCHER_SIZE_VARIABLES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE")


class MpiMissing(ConvnetError, ImportError):
    pass


class RanksDiffer(ConvnetError, ValueError):
    """The ranks of one job were started with different settings, code or data."""


class Group:
    """One process alone: every rank's share is everything and the sums are the values."""
    rank, size = 0, 1

    def share(self, count):
        """This rank's slice of ``count`` items split in ``size`` contiguous parts."""
        per_rank, extra = divmod(count, self.size)
        start = self.rank * per_rank + min(self.rank, extra)
        return slice(start, start + per_rank + (self.rank < extra))

    def sum(self, buffer):
        """Sum the contiguous ``buffer`` over the ranks, in place on every rank."""

    def broadcast(self, buffer):
        """Overwrite the contiguous ``buffer`` with rank 0's, on every rank."""

    def broadcast_object(self, value):
        """Rank 0's ``value`` (anything picklable), on every rank."""
        return value

    def check_same(self, what, text):
        """Refuse (`RanksDiffer`) unless every rank holds the same ``text`` (a description of ``what``)."""


class MpiGroup(Group):
    """The ranks of an MPI job (``comm``: an mpi4py communicator)."""

    def __init__(self, comm):
        from mpi4py import MPI
        self.comm, self._in_place, self._sum = comm, MPI.IN_PLACE, MPI.SUM
        self.rank, self.size = comm.Get_rank(), comm.Get_size()

    def sum(self, buffer):
        self.comm.Allreduce(self._in_place, buffer, op=self._sum)

    def broadcast(self, buffer):
        self.comm.Bcast(buffer, root=0)

    def broadcast_object(self, value):
        return self.comm.bcast(value, root=0)

    def check_same(self, what, text):
        digests = self.comm.allgather(hashlib.sha256(text.encode()).hexdigest())
        differing = [rank for rank, digest in enumerate(digests) if digest != digests[0]]
        if differing:
            raise RanksDiffer(f"rank{'s' if len(differing) > 1 else ''} {', '.join(map(str, differing))} "
                              f"differ{'' if len(differing) > 1 else 's'} from rank 0 in {what}; start every rank "
                              f"with the same command, convnet version and data")

    def abort(self, code):
        """End every rank of the job now (a rank that failed must not leave the others waiting)."""
        self.comm.Abort(code)



ONE_PROCESS = Group()  # the training loop's and evaluation's default: this process alone


def batch_share(group, images, labels):
    """This rank's share of a batch of (images Tensor, labels): the whole batch in one process."""
    if group.size == 1:
        return images, labels
    share = group.share(len(labels))
    return Tensor(np.ascontiguousarray(images.data[share])), labels[share]


def launched_by_mpirun():
    """The number of ranks an MPI launcher started this process among (1 when none did)."""
    for name in LAUNCHER_SIZE_VARIABLES:
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 1


def world():
    """The job's ranks: `MpiGroup` over MPI_COMM_WORLD, or `MpiMissing` naming what to install."""
    try:
        from mpi4py import MPI
    except ImportError as error:
        raise MpiMissing(f"--distributed needs mpi4py and an MPI library ({error}): {INSTALL}") from None
    return MpiGroup(MPI.COMM_WORLD)


def flat_gradients(parameters):
    """One contiguous buffer of every parameter's gradient (zeros for one that has none), and a
    function writing a buffer back into the gradients: what one Allreduce sums."""
    dtype = np.result_type(*(p.data.dtype for p in parameters))
    sizes = [p.data.size for p in parameters]
    buffer = np.empty(sum(sizes), dtype=dtype)
    offset = 0
    for p, size in zip(parameters, sizes):
        buffer[offset:offset + size] = 0 if p.grad is None else p.grad.data.reshape(-1)
        offset += size

    def write_back():
        start = 0
        for p, size in zip(parameters, sizes):
            values = buffer[start:start + size].reshape(p.data.shape).astype(p.data.dtype, copy=False)
            if p.grad is None:
                p.grad = Tensor(values.copy())
            else:
                p.grad.data[...] = values
            start += size
    return buffer, write_back


def synchronise_batch_norm(model, group):
    """Make every batch-norm layer of ``model`` normalise with the statistics of the whole batch,
    summed over ``group``'s ranks (``--sync-bn``, like torch.nn.SyncBatchNorm), so that a model
    with batch norm trains as in one process."""
    from .nn.normalization import _BatchNorm
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.sum_across = group.sum
