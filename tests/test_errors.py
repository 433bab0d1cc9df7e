"""Bad input gets a ValueError or TypeError naming the op or layer, what was given and what was expected."""

import numpy as np
import pytest

import convnet
import convnet.functional as F
from convnet import nn

X = convnet.zeros(2, 3, 8, 8)
W = convnet.zeros(4, 3, 3, 3)

CASES = [
    # (callable, exception, message pattern)
    (lambda: F.conv2d(convnet.zeros(3, 8, 8), W), ValueError,
     r"conv2d: expected input of shape \(N, C, H, W\), got \(3, 8, 8\)"),
    (lambda: F.conv2d(X, convnet.zeros(4, 3, 3)), ValueError,
     r"conv2d: expected weight of shape \(O, C/groups, kH, kW\), got \(4, 3, 3\)"),
    (lambda: F.conv2d(X, convnet.zeros(4, 2, 3, 3)), ValueError,
     r"conv2d: expected weight of shape \(4, 3, kH, kW\) for input with 3 channels and groups=1, got \(4, 2, 3, 3\)"),
    (lambda: F.conv2d(X, convnet.zeros(4, 3, 9, 3)), ValueError,
     r"conv2d: kernel \(9, 3\) with dilation \(1, 1\) spans \(9, 3\), larger than the padded input \(8, 8\)"),
    (lambda: F.conv2d(X, convnet.zeros(4, 1, 3, 3), groups=2), ValueError,
     r"conv2d: expected groups to divide in_channels and out_channels, got groups=2, in_channels=3, out_channels=4"),
    (lambda: F.conv2d(X, W, stride=0), ValueError, r"conv2d: expected stride >= 1, got 0"),
    (lambda: F.conv2d(X, W, stride=(1, -2)), ValueError, r"conv2d: expected stride >= 1, got \(1, -2\)"),
    (lambda: F.conv2d(X, W, padding=-1), ValueError, r"conv2d: expected padding >= 0, got -1"),
    (lambda: F.conv2d(X, W, padding="full"), ValueError,
     r"padding to be an int, a pair, (four sides, )?'same' or 'valid', got 'full'"),
    (lambda: F.conv2d(X, W, stride=2, padding="same"), ValueError, r"padding='same' needs stride 1"),
    (lambda: F.conv2d(X, W, bias=convnet.zeros(3)), ValueError, r"conv2d: expected bias of shape \(4,\), got \(3,\)"),
    (lambda: F.conv2d(np.zeros((2, 3, 8, 8), dtype=np.int64), W), TypeError,
     r"conv2d: expected input to be a floating-point tensor \(float32 or float64\), got dtype int64"),
    (lambda: F.conv2d(np.array([[[[None]]]], dtype=object), W), TypeError, r"got dtype object"),
    (lambda: F.conv2d(X, W.numpy().astype(np.float64)), TypeError,
     r"conv2d: expected weight dtype to match input dtype float32, got float64"),
    (lambda: F.conv2d("image", W), TypeError, r"conv2d: expected input to be a Tensor, got str"),
    (lambda: F.conv_transpose2d(convnet.zeros(3, 8, 8), W), ValueError,
     r"conv_transpose2d: expected input of shape \(N, C_in, H, W\), got \(3, 8, 8\)"),
    (lambda: F.conv_transpose2d(X, convnet.zeros(3, 4, 3)), ValueError,
     r"conv_transpose2d: expected weight of shape \(C_in, C_out/groups, kH, kW\), got \(3, 4, 3\)"),
    (lambda: F.conv_transpose2d(X, W), ValueError,
     r"conv_transpose2d: expected weight of shape \(3, C_out/groups, kH, kW\) for input with 3 channels, "
     r"got \(4, 3, 3, 3\)"),
    (lambda: F.conv_transpose2d(X, convnet.zeros(3, 2, 3, 3), groups=2), ValueError,
     r"conv_transpose2d: expected groups to divide in_channels and out_channels, got groups=2, in_channels=3, "
     r"out_channels=4"),
    (lambda: F.conv_transpose2d(X, convnet.zeros(3, 4, 3, 3), stride=2, output_padding=2), ValueError,
     r"conv_transpose2d: expected output_padding smaller than stride or dilation, got output_padding=\(2, 2\), "
     r"stride=\(2, 2\), dilation=\(1, 1\)"),
    (lambda: F.conv_transpose2d(X, convnet.zeros(3, 4, 3, 3), output_padding=(0, 1)), ValueError,
     r"conv_transpose2d: expected output_padding smaller than stride or dilation, got output_padding=\(0, 1\)"),
    (lambda: F.conv_transpose2d(X, convnet.zeros(3, 4, 3, 3), padding=-1), ValueError,
     r"conv_transpose2d: expected padding >= 0, got -1"),
    (lambda: F.conv_transpose2d(X, convnet.zeros(3, 4, 3, 3), padding="same"), TypeError,
     r"conv_transpose2d: expected padding to be an int, a pair \(pH, pW\) or four ints .*, got 'same'"),
    (lambda: F.conv_transpose2d(X, convnet.zeros(3, 4, 3, 3), padding=6), ValueError,
     r"conv_transpose2d: expected a positive output size, got \(-2, -2\) for input \(8, 8\)"),
    (lambda: F.conv_transpose2d(X, convnet.zeros(3, 4, 3, 3), stride=0), ValueError,
     r"conv_transpose2d: expected stride >= 1, got 0"),
    (lambda: F.conv_transpose2d(np.zeros((2, 3, 8, 8), dtype=np.int32), convnet.zeros(3, 4, 3, 3)), TypeError,
     r"conv_transpose2d: expected input to be a floating-point tensor \(float32 or float64\), got dtype int32"),
    (lambda: F.conv_transpose2d(X, np.zeros((3, 4, 3, 3))), TypeError,
     r"conv_transpose2d: expected weight dtype to match input dtype float32, got float64"),
    (lambda: F.conv_transpose2d(X, convnet.zeros(3, 2, 3, 3), bias=convnet.zeros(4), groups=3), ValueError,
     r"conv_transpose2d: expected bias of shape \(6,\), got \(4,\)"),
    (lambda: F.max_pool2d(convnet.zeros(8, 8), 2), ValueError, r"max_pool2d: expected input of shape \(N, C, H, W\)"),
    (lambda: F.max_pool2d(X, 9), ValueError, r"max_pool2d: kernel_size \(9, 9\) is larger than the padded input"),
    (lambda: F.max_pool2d(X, 2, padding=2), ValueError, r"padding should be at most half the kernel size"),
    (lambda: F.avg_pool2d(X, 0), ValueError, r"avg_pool2d: expected kernel_size >= 1, got 0"),
    (lambda: F.max_pool2d(X, 2.5), TypeError, r"max_pool2d: expected kernel_size to be an int or a pair of ints, got 2.5"),
    (lambda: F.adaptive_avg_pool2d(X, 0), ValueError, r"expected output_size >= 1"),
    (lambda: F.linear(convnet.zeros(2, 5), convnet.zeros(3, 4)), ValueError,
     r"linear: expected input of shape \(\*, 4\), got \(2, 5\)"),
    (lambda: F.cross_entropy(convnet.zeros(3, 4), [0, 4, -1]), ValueError,
     r"cross_entropy: expected target classes in \[0, 3\], got \[4, -1\]"),
    (lambda: F.cross_entropy(convnet.zeros(3, 4), [0.0, 1.0, 2.0]), TypeError,
     r"cross_entropy: expected target to hold integer class indices, got dtype float"),
    (lambda: F.cross_entropy(convnet.zeros(3, 4), [0, 1]), ValueError,
     r"cross_entropy: expected target of shape \(3,\) for input of shape \(3, 4\), got \(2,\)"),
    (lambda: F.cross_entropy(convnet.zeros(3, 4), [0, 1, 2], reduction="avg"), ValueError, r"expected reduction in"),
    (lambda: F.cross_entropy(convnet.zeros(3, 4), [0, 1, 2], label_smoothing=1.5), ValueError,
     r"expected label_smoothing between 0 and 1, got 1.5"),
    (lambda: F.nll_loss(convnet.zeros(4), [0]), ValueError, r"nll_loss: expected input of shape \(N, C\), got \(4,\)"),
    (lambda: F.mse_loss(convnet.zeros(3), convnet.zeros(3, 1)), ValueError,
     r"mse_loss: expected target of shape \(3,\) like the input, got \(3, 1\)"),
    (lambda: F.batch_norm(convnet.zeros(1, 3), np.zeros(3), np.ones(3), training=True), ValueError,
     r"expected more than 1 value per channel when training"),
    (lambda: F.batch_norm(convnet.zeros(4, 3), np.zeros(2), np.ones(2)), ValueError,
     r"batch_norm: expected running_mean of shape \(3,\), got \(2,\)"),
    (lambda: F.softmax(convnet.zeros(2, 3), dim=2), ValueError, r"softmax: dim=2 is out of range for input of shape"),
    (lambda: F.dropout(convnet.zeros(2), p=1.5), ValueError, r"dropout: expected p between 0 and 1, got 1.5"),
    (lambda: F.gelu(convnet.zeros(2), approximate="fast"), ValueError, r"approximate to be 'none' or 'tanh'"),
    (lambda: convnet.zeros(2, 3) @ convnet.zeros(4, 2), ValueError,
     r"matmul: cannot multiply shapes \(2, 3\) and \(4, 2\): inner dimensions 3 and 4 differ"),
    # Layers name themselves.
    (lambda: nn.Conv2d(1, 32, kernel_size=3)(convnet.zeros(128, 3, 28, 28)), ValueError,
     r"^Conv2d\(1, 32, kernel_size=3\): expected input of shape \(N, 1, H, W\), got \(128, 3, 28, 28\)$"),
    (lambda: nn.Conv2d(3, 8, 5)(convnet.zeros(1, 3, 4, 4)), ValueError,
     r"^Conv2d\(3, 8, kernel_size=5\): conv2d: kernel \(5, 5\) .* larger than the padded input"),
    (lambda: nn.Conv2d(3, 8, 3, groups=2), ValueError, r"Conv2d: expected groups to divide in_channels and "
                                                       r"out_channels, got groups=2, in_channels=3, out_channels=8"),
    (lambda: nn.Conv2d(0, 8, 3), ValueError, r"Conv2d: expected in_channels to be a positive int, got 0"),
    (lambda: nn.Conv2d(1, 8, 3, stride=0), ValueError, r"Conv2d: expected stride >= 1, got 0"),
    (lambda: nn.ConvTranspose2d(16, 8, 3)(convnet.zeros(2, 8, 7, 7)), ValueError,
     r"^ConvTranspose2d\(16, 8, kernel_size=3\): expected input of shape \(N, 16, H, W\), got \(2, 8, 7, 7\)$"),
    (lambda: nn.ConvTranspose2d(4, 6, 3, groups=4), ValueError, r"ConvTranspose2d: expected groups to divide "
                                                               r"in_channels and out_channels, got groups=4"),
    (lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, output_padding=2), ValueError,
     r"ConvTranspose2d: expected output_padding smaller than stride or dilation, got output_padding=\(2, 2\)"),
    (lambda: nn.ConvTranspose2d(4, 6, 3, padding=(1, -1)), ValueError,
     r"ConvTranspose2d: expected padding >= 0, got \(1, -1\)"),
    (lambda: nn.ConvTranspose2d(4, 6, 3, padding=9)(convnet.zeros(1, 4, 2, 2)), ValueError,
     r"^ConvTranspose2d\(4, 6, kernel_size=3\): conv_transpose2d: expected a positive output size"),
    (lambda: nn.Linear(10, 2)(convnet.zeros(4, 9)), ValueError,
     r"Linear\(in_features=10, out_features=2, bias=True\): expected input of shape \(\*, 10\), got \(4, 9\)"),
    (lambda: nn.BatchNorm2d(4)(convnet.zeros(2, 3, 5, 5)), ValueError,
     r"BatchNorm2d\(4\): expected input of shape \(N, 4, H, W\), got \(2, 3, 5, 5\)"),
    (lambda: nn.BatchNorm1d(4)(convnet.zeros(2, 4, 5, 5)), ValueError, r"BatchNorm1d\(4\): expected input of shape \(N, 4\)"),
    (lambda: nn.MaxPool2d(2)(convnet.zeros(2, 4)), ValueError, r"MaxPool2d\(kernel_size=\(2, 2\).*\): max_pool2d: expected input"),
    (lambda: nn.Dropout(2), ValueError, r"Dropout: expected p between 0 and 1, got 2"),
    (lambda: nn.Sequential(nn.ReLU(), "relu"), TypeError, r"Sequential: expected Module arguments, got str for '1'"),
]


@pytest.mark.parametrize("call, exception, pattern", CASES)
def test_bad_input_is_named_clearly(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


def test_a_nested_layer_error_is_prefixed_once_by_the_innermost_layer():
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3)))
    with pytest.raises(ValueError) as error:
        model(convnet.zeros(1, 2, 5, 5))
    assert str(error.value).count("Conv2d(1, 2, kernel_size=3)") == 1
    assert "Sequential" not in str(error.value)


# ---------------------------------------------------------------------------- one base error
def _convnet_exception_classes():
    """Every public exception class defined in convnet: {qualified name: class}, from importing
    every module (``__main__`` aside: importing it runs the command line)."""
    import importlib
    import inspect
    import pkgutil
    found = {}
    for module_info in pkgutil.walk_packages(convnet.__path__, "convnet."):
        if module_info.name.endswith("__main__"):
            continue
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if (inspect.isclass(value) and issubclass(value, BaseException) and not name.startswith("_")
                    and value.__module__.startswith("convnet")):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


# Exceptions no builtin error describes better than Exception: named here, with the reason.
WITHOUT_BUILTIN_BASE = {
    "ConvnetError": "the base itself",
    "Unsupported": "an ONNX node convnet cannot run (its caller, the loader, reports it as OnnxError)",
}


def test_every_exception_convnet_raises_on_purpose_derives_from_convnet_error_and_a_builtin_error():
    classes = _convnet_exception_classes()
    assert len(classes) >= 23, sorted(classes)  # ConvnetError and its 22 subclasses at least: the walk finds them
    assert [name for name, cls in classes.items() if not issubclass(cls, convnet.ConvnetError)] == []
    builtin_bases = {name: [base for base in cls.__mro__ if base.__module__ == "builtins"
                            and base not in (Exception, BaseException, object)] for name, cls in classes.items()}
    assert sorted(classes[name].__name__ for name, bases in builtin_bases.items() if not bases) == sorted(
        WITHOUT_BUILTIN_BASE)


# ---------------------------------------------------------------------------- every command's refusals
def _tree(root):
    return {str(path.relative_to(root)): path.read_bytes() if path.is_file() else None for path in root.rglob("*")}


@pytest.fixture
def refusal_inputs(tmp_path, monkeypatch):
    """A damaged run folder, a copy of the shipped weights with one byte flipped (put where convnet
    looks for them), an image, a file where a folder belongs, and an empty folder to download into."""
    from convnet import pretrained
    damaged_run = tmp_path / "damaged_run"
    damaged_run.mkdir()
    (damaged_run / "checkpoint.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "reference_cnn.json").write_bytes((pretrained.WEIGHTS / "reference_cnn.json").read_bytes())
    data = bytearray((pretrained.WEIGHTS / "reference_cnn.safetensors").read_bytes())
    data[-1] ^= 1
    (weights / "reference_cnn.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "WEIGHTS", weights)
    from PIL import Image
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "image.png")
    (tmp_path / "pictures").write_text("a file, not a folder")
    (tmp_path / "cache").mkdir()
    return tmp_path


REFUSED = [  # (argv, what the error's message says); {tmp} is the inputs' folder
    (["train", "--data", "{tmp}/missing", "--epochs", "1", "--out", "{tmp}/run"], "--data {tmp}/missing is not a"),
    (["train", "--resume", "{tmp}/damaged_run"], "{tmp}/damaged_run/checkpoint.safetensors"),
    (["train", "--resume", "{tmp}/missing"], "no checkpoint in {tmp}/missing"),
    (["train", "--resume", "{tmp}/damaged_run", "--lr", "0.1"], "--resume continues a run with its saved settings"),
    (["train", "--epochs", "2", "--time-budget", "5m"], "give --epochs or --time-budget, not both"),
    (["train", "--augment", "none", "--test-mirror", "--out", "{tmp}/run"], "test_mirror averages each test image"),
    (["evaluate", "{tmp}/missing"], "{tmp}/missing is neither a run folder"),
    (["evaluate", "{tmp}/damaged_run"], "{tmp}/damaged_run/checkpoint.safetensors"),
    (["evaluate", "--model", "reference_cnn"], "{tmp}/weights/reference_cnn.safetensors is damaged or was replaced"),
    (["evaluate", "reference_cnn", "--model", "lenet5"], "--model lenet5 and reference_cnn both name a model"),
    (["predict", "reference_cnn", "{tmp}/image.png"], "{tmp}/weights/reference_cnn.safetensors is damaged"),
    (["predict", "vgg", "{tmp}/image.png"], "vgg is neither a run folder"),
    (["predict", "{tmp}/damaged_run", "{tmp}/image.png"], "{tmp}/damaged_run/checkpoint.safetensors"),
    (["predict", "--model", "lenet5"], "predict takes RUN_DIR, MODEL or MODEL.onnx"),
    (["summary", "--model", "reference_cnn"], "{tmp}/weights/reference_cnn.safetensors is damaged"),
    (["summary", "{tmp}/damaged_run"], "{tmp}/damaged_run/checkpoint.safetensors"),
    (["summary"], "summary takes one RUN_DIR, MODEL or MODEL.onnx"),
    (["export", "{tmp}/damaged_run", "{tmp}/out.onnx"], ""),  # the damage, or that onnx is not installed
    (["export", "--model", "lenet5"], "export takes RUN_DIR or MODEL (or --model NAME), then OUT.onnx"),
    (["show", "reference_cnn", "--out", "{tmp}/shown"], "{tmp}/weights/reference_cnn.safetensors is damaged"),
    (["show", "lenet5", "--out", "{tmp}/pictures"], "--out {tmp}/pictures is a file; expected a folder"),
    (["show", "--lesson", "--model", "lenet5", "--out", "{tmp}/shown"], "--lesson draws the lesson's own network"),
    (["show", "{tmp}/damaged_run", "--out", "{tmp}/shown"], "{tmp}/damaged_run/checkpoint.safetensors"),
    (["watch", "{tmp}/missing"], "watch: {tmp}/missing is not a run folder"),
    (["download", "fashion-mnist", "--dir", "{tmp}/cache", "--url", "http://127.0.0.1:9"], ""),
]


@pytest.mark.parametrize("argv, message", REFUSED, ids=[" ".join(argv[:2]) for argv, _ in REFUSED])
def test_every_command_refuses_bad_input_in_one_line_and_leaves_its_inputs_alone(argv, message, refusal_inputs,
                                                                                capsys):
    from convnet.cli import main
    before = _tree(refusal_inputs)
    code = main([word.format(tmp=refusal_inputs) for word in argv])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert err.startswith("convnet: error: ") and err.count("\n") == 1, err
    assert message.format(tmp=refusal_inputs) in err
    assert _tree(refusal_inputs) == before  # nothing written, nothing removed


BAD_OPTIONS = [  # (argv, what argparse says)
    (["train", "--epochs", "0"], "argument --epochs: expected a positive integer, got 0"),
    (["train", "--model", "vgg"], "argument --model: invalid choice: 'vgg'"),
    (["train", "--optimizer", "lion"], "argument --optimizer: invalid choice: 'lion'"),
    (["evaluate", "--model", "vgg"], "argument --model: invalid choice: 'vgg'"),
    (["predict", "--bogus", "reference_cnn"], "unrecognized arguments: --bogus"),
    (["summary", "--lang", "fr"], "unrecognized arguments: --lang"),  # fr reads as the network's name
    (["export", "lenet5", "m.onnx", "--opset", "x"], "argument --opset: expected a positive integer, got 'x'"),
    (["show", "--layer", "one"], "argument --layer: invalid int value: 'one'"),
    (["watch", "--port", "http"], "argument --port: invalid int value: 'http'"),
    (["download", "cifar"], "argument dataset: invalid choice: 'cifar'"),
    (["demo", "--epochs", "-1"], "argument --epochs: expected a positive integer, got -1"),
    (["bench", "--repeats", "many"], "argument --repeats: expected a positive integer, got 'many'"),
]


@pytest.mark.parametrize("argv, message", BAD_OPTIONS, ids=[" ".join(argv[:2]) for argv, _ in BAD_OPTIONS])
def test_a_bad_option_exits_2_with_the_commands_own_usage(argv, message, capsys):
    from convnet.cli import main
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.startswith(f"usage: convnet {argv[0]} ")
    assert err.splitlines()[-1].startswith(f"convnet {argv[0]}: error: {message}")
