"""What the bench times: a `Case` builds, for each contender, the call to time; the contenders'
optional libraries are imported only by the processes that run them."""

from dataclasses import dataclass

import numpy as np

from ..kernels.convolution import channel_major, channels_last, nchw
from ..process import withdraw_thread_defaults

BATCH = 128
CONTENDERS = ("convnet", "torch", "torch_cl", "onnxruntime")
EVERY_CASE = CONTENDERS[:3]  # onnxruntime only runs inference

# The memory order of the (N, C, H, W) arrays convnet is given (``--layout``): the order its own
# layers hand on is the fair one. PyTorch NCHW always gets contiguous arrays and PyTorch
# channels_last channels-last ones, whatever this says.
LAYOUTS = {"channels_last": lambda x: nchw(channels_last(x)),   # (N, H, W, C) memory, as torch_cl's
           "nchw": np.ascontiguousarray,                          # (N, C, H, W) memory, as torch's
           "channel_major": lambda x: channel_major(x).transpose(1, 0, 2, 3)}  # (C, N, H, W) memory
DEFAULT_LAYOUT = "channels_last"


@dataclass
class Case:
    """One figure: ``build(contender)`` gives the call to time, for each of ``contenders``;
    ``images`` per call make img/s."""
    name: str
    build: object
    images: int = 0
    flops: int = 0
    contenders: tuple = EVERY_CASE


def import_torch():
    withdraw_thread_defaults()  # PyTorch's own OpenMP pool keeps its usual idle wait
    try:
        import torch
    except ImportError:
        return None
    return torch


def import_onnxruntime():
    try:
        import onnx  # noqa: F401  (convnet.onnx.export's, to write the model onnxruntime runs)
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def in_layout(array, layout):
    """The (N, C, H, W) ``array``, same values, as a view of memory in ``layout`` (one of LAYOUTS);
    arrays of other ranks as they are."""
    return LAYOUTS[layout](array) if array.ndim == 4 else array


def torch_inputs(torch, arrays, channels_last):
    tensors = [torch.from_numpy(a) for a in arrays]
    if channels_last:
        tensors = [t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t for t in tensors]
    return tensors
