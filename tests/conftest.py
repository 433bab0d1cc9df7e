"""Shared oracles: central finite differences (float64) and PyTorch (float32).

The test extras (PyTorch, onnx, onnxruntime, mpi4py, ...: ``pip install -e '.[test]'``) are
optional here: a test that needs one is marked ``requires("onnxruntime")`` (or ``requires_torch``,
or calls ``torch_check``) and skips, saying which, where it is missing; everything else runs with
the core dependencies and pytest, hypothesis and scipy. CI (``CI`` set) refuses to start without
every extra, so that nothing is skipped there.
"""

import importlib.util
import os
import signal

import convnet  # first: it sets BLAS's idle wait, which NumPy's BLAS reads when it loads
import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st

from convnet import Tensor
from convnet.tensor import Function

settings.register_profile("convnet", max_examples=25, deadline=None, derandomize=True)
settings.load_profile("convnet")

try:
    import torch
except ImportError:
    torch = None
else:
    torch.set_num_threads(1)

TORCH_MISSING = "PyTorch 2.13 is not installed (pip install -e '.[test]')"
requires_torch = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
# The test extra's packages that only some tests need (pytest, hypothesis and scipy every run needs).
EXTRAS = ("torch", "onnx", "onnxruntime", "onnxscript", "mpi4py", "tensorboardX", "build")


def installed(package):
    return importlib.util.find_spec(package) is not None


def requires(*packages):
    """A mark that skips the test where one of ``packages`` (of `EXTRAS`) is not installed, naming it."""
    missing = [package for package in packages if not installed(package)]
    return pytest.mark.skipif(bool(missing), reason=f"needs {' and '.join(missing)} (pip install -e '.[test]')")


def pytest_configure(config):
    # A test run started in the background by a shell without job control (`make test &`, a queue
    # script) inherits SIGINT ignored, and so would every process a test starts: `convnet watch`
    # would then outlive the Ctrl-C its tests send. Each process (xdist's workers too) catches it
    # again, so the processes it starts get the default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    missing = [package for package in EXTRAS if not installed(package)]
    if missing and os.environ.get("CI"):
        raise pytest.UsageError(f"{', '.join(missing)} not installed (pip install -e '.[test]'); CI runs every test, "
                                f"so it refuses to skip the tests that need them")


def finite_difference_check(fn, arrays, eps=1e-6, rtol=1e-5, atol=1e-8, directions=3, seed=0):
    """Compare fn's autograd gradients with central differences along random directions.

    ``fn`` maps float64 Tensors to a Tensor. The scalar checked is sum(fn(*x) * w) for a fixed
    random ``w``; for each input and each random direction v, (L(x + eps v) - L(x - eps v)) / 2eps
    must equal <dL/dx, v>. Dense random directions expose an error in any gradient element.
    """
    rng = np.random.default_rng(seed)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    inputs = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    out = fn(*inputs)
    weights = rng.standard_normal(out.shape)
    (out * weights).sum().backward()

    def loss(values):
        return float((fn(*[Tensor(v) for v in values]).numpy() * weights).sum())

    for i, tensor in enumerate(inputs):
        assert tensor.grad is not None, f"input {i} got no gradient"
        assert tensor.grad.shape == arrays[i].shape
        for _ in range(directions):
            v = rng.standard_normal(arrays[i].shape)
            plus = [a + eps * v if j == i else a for j, a in enumerate(arrays)]
            minus = [a - eps * v if j == i else a for j, a in enumerate(arrays)]
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            analytic = float((tensor.grad.numpy() * v).sum())
            assert analytic == pytest.approx(numeric, rel=rtol, abs=atol + rtol * np.abs(tensor.grad.numpy()).sum()), \
                f"input {i}: autograd {analytic} vs finite differences {numeric}"


def torch_check(ours, theirs, arrays, rtol=1e-4, atol=1e-5, seed=0, grad_inputs=None):
    """Run ``ours`` on convnet Tensors and ``theirs`` on torch tensors (float32); compare the
    outputs and, for a random output gradient, every input's gradient. Skips without PyTorch."""
    if torch is None:
        pytest.skip(TORCH_MISSING)
    rng = np.random.default_rng(seed)
    arrays = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
    grad_inputs = range(len(arrays)) if grad_inputs is None else grad_inputs
    our_inputs = [Tensor(a.copy(), requires_grad=i in grad_inputs) for i, a in enumerate(arrays)]
    their_inputs = [torch.tensor(a, requires_grad=i in grad_inputs) for i, a in enumerate(arrays)]
    out, expected = ours(*our_inputs), theirs(*their_inputs)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=rtol, atol=atol)
    grad = rng.standard_normal(out.shape).astype(np.float32)
    out.backward(grad)
    expected.backward(torch.from_numpy(grad))
    for i in grad_inputs:
        np.testing.assert_allclose(our_inputs[i].grad.numpy(), their_inputs[i].grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of input {i}")
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True)
def _seed():
    convnet.manual_seed(0)


def assert_close_relative_to_scale(actual, expected, tolerance=1e-5):
    """max |actual - expected| <= tolerance * max |expected|: for float32 sums of many terms,
    where elementwise relative error is meaningless for entries that nearly cancel."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape
    error, scale = np.abs(actual - expected).max(), np.abs(expected).max()
    assert error <= tolerance * scale, f"max error {error} exceeds {tolerance} x scale {scale}"


def to_torch_state(module):
    return {key: torch.from_numpy(np.array(value)) for key, value in module.state_dict().items()}


def check_twins(ours, theirs, input_shape, rng, train=True, steps=2, input_requires_grad=True, dtype=np.float32):
    """Load ours' weights into theirs (a torch.nn twin); compare keys, outputs, the input's
    gradient (unless not ``input_requires_grad``: a first layer) and the parameters', and (for
    layers with buffers) the buffers after ``steps`` training forwards, on inputs of ``dtype``
    (the twins' own, so float64 twins for a deep network: in float32 a ReLU input within
    rounding of 0 can fall on either side in either library, and one such flip moves a gradient
    by a whole term)."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(to_torch_state(ours))
    ours.train(train)
    theirs.train(train)
    for _ in range(steps):
        x = rng.standard_normal(input_shape).astype(dtype)
        ours.zero_grad()
        theirs.zero_grad()
        our_x = Tensor(x, requires_grad=input_requires_grad)
        their_x = torch.tensor(x, requires_grad=input_requires_grad)
        out, expected = ours(our_x), theirs(their_x)
        np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-4, atol=1e-5)
        grad = rng.standard_normal(out.shape).astype(dtype)
        out.backward(grad)
        expected.backward(torch.from_numpy(grad))
        if input_requires_grad:
            assert_close_relative_to_scale(our_x.grad.numpy(), their_x.grad.numpy())
        their_params = dict(theirs.named_parameters())
        for name, parameter in ours.named_parameters():
            assert_close_relative_to_scale(parameter.grad.numpy(), their_params[name].grad.numpy())
    their_state = theirs.state_dict()
    for key, value in ours.state_dict().items():
        np.testing.assert_allclose(value, their_state[key].numpy(), rtol=1e-5, atol=1e-6, err_msg=key)


def write_tiny_fashion(directory, train=256, test=64, seed=0):
    """A Fashion-MNIST-shaped dataset (IDX .gz files) that a CNN can learn: class k is noise
    with a bright 6x6 square at a class-specific place."""
    from convnet.data import write_idx
    rng = np.random.default_rng(seed)
    for split, count in (("train", train), ("t10k", test)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels):
            row, col = 2 + 8 * (label // 4), 2 + 6 * (label % 4)
            image[row:row + 6, col:col + 6] = 250
        write_idx(directory / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(directory / f"{split}-labels-idx1-ubyte.gz", labels)
    return directory


@pytest.fixture
def tiny_fashion(tmp_path):
    directory = tmp_path / "data"
    directory.mkdir()
    return write_tiny_fashion(directory)


@st.composite
def window_geometries(draw, max_dilation=2, max_padding=3, max_size=12):
    """A window op's geometry with at least one output position: (kernel, stride, dilation, padding
    (top, bottom, left, right), input (H, W)), kernels 1-5, strides 1-3, sizes from 1, asymmetric
    padding; the Hypothesis strategy the convolution kernels' tests share."""
    kernel = (draw(st.integers(1, 5)), draw(st.integers(1, 5)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, max_dilation)), draw(st.integers(1, max_dilation)))
    padding = tuple(draw(st.integers(0, max_padding)) for _ in range(4))
    hw = tuple(draw(st.integers(max(1, dilation[a] * (kernel[a] - 1) + 1 - padding[2 * a] - padding[2 * a + 1]),
                                max_size)) for a in range(2))
    return kernel, stride, dilation, padding, hw


class RecordGradient(Function):
    """The identity; its backward keeps the gradient it is handed (the next op's input gradient) in ``seen``."""

    def forward(self, x, seen):
        self.seen = seen
        return x

    def backward(self, grad):
        self.seen.append(grad)
        return grad


class FixedTime:
    """A bench contender that answers every case with the same time (None: it does not run it)."""

    def __init__(self, name, seconds):
        self.name, self.seconds = name, seconds

    def time(self, case):
        return self.seconds

    def cpu_seconds(self):
        return 0.0


def run_conv_kernels(functions, image, weight, grad_out, geometry):
    """A convolution's (forward, input gradient, weight gradient) kernels on the same arrays, each
    into an array of NaN, so that an element left unwritten shows: (out, grad_image, grad_weight)."""
    forward, input_grad, weight_grad = functions
    out, grad_image, grad_weight = (np.full(a.shape, np.nan, dtype=a.dtype) for a in (grad_out, image, weight))
    forward(image, weight, *geometry, out)
    input_grad(grad_out, weight, *geometry, grad_image)
    weight_grad(grad_out, image, *geometry, grad_weight)
    return out, grad_image, grad_weight


def torchvision_models():
    """torchvision.models, the oracle of the ImageNet zoo; skips the test, saying why, without it.

    The torchvision that pairs with the CPU build of torch 2.13 on PyPI has compiled ops built for the
    CUDA build, so `import torchvision` fails in its `__init__`; the model definitions need none of
    those ops, so where the plain import fails the package is opened without running its `__init__`.
    """
    try:
        import torchvision.models as models
        return models
    except ImportError:
        pytest.skip("needs torchvision (pip install -e '.[test]'): the oracle of the ImageNet architectures")
    except (OSError, RuntimeError):
        pass
    import importlib.machinery
    import importlib.util
    import sys
    for name in [name for name in sys.modules if name == "torchvision" or name.startswith("torchvision.")]:
        del sys.modules[name]
    found = importlib.util.find_spec("torchvision")
    package = importlib.util.module_from_spec(importlib.machinery.ModuleSpec("torchvision", None, is_package=True))
    package.__path__ = list(found.submodule_search_locations)
    package.__file__ = found.origin
    sys.modules["torchvision"] = package
    import torchvision.models as models
    return models


def in_layout(x, layout):
    """The (N, C, H, W) array x as a view of ``layout``'s memory."""
    if layout == "channel_major":
        return np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    if layout == "channels_last":
        return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)
