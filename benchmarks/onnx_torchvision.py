"""torchvision's CNN families, random weights, through both of PyTorch's ONNX exporters into convnet.

    python benchmarks/onnx_torchvision.py [NAME ...] [--size 224] [--batch 2] [--exporter E]
                                          [--results FILE.jsonl]
    python benchmarks/onnx_torchvision.py --table FILE.jsonl

For each network (default: `NETWORKS`, each family's smallest member and the members with a
construct of their own) and each exporter (``torchscript``: ``torch.onnx.export(..., dynamo=False)``;
``dynamo``: ``dynamo=True``), at SIZE px, batch BATCH:

- forward: the network in evaluation mode, exported (batch norm folded into the convolutions, as
  both exporters do in evaluation mode), loaded by `convnet.onnx.load`, and its output compared with
  onnxruntime's running the same file: max |convnet - onnxruntime| / max |onnxruntime|.
- gradient: one SGD step (lr 0.1, cross-entropy on fixed labels) in training mode. A file exported
  in evaluation mode has no batch norm left to train, so the network is exported a second time:
  by the TorchScript exporter in training mode (``training=TrainingMode.TRAINING``: BatchNormalization
  nodes with ``training_mode=1``, which normalise with the batch's statistics); by the dynamo one,
  which writes batch norm's inference form whatever the module's mode, with ``optimize=False``, so
  that its BatchNormalization nodes stay and load as ``nn.BatchNorm2d`` layers, which use the batch's
  statistics once the loaded model is in ``train()`` mode, as torch's do. Dropout and stochastic
  depth are set to p = 0 first, since their random masks cannot match. The step runs in float64
  (the network exported in double): batch norm's statistics over two images make float32 gradients
  of a random network ill-conditioned (torch's own float32 gradient of ShuffleNetV2 x0.5 at 224 px
  is 0.15 of its scale away from its float64 one), so float32 would measure rounding, not the importer.
  The gradient error is the largest, over the input and every weight the file names as torch does
  (``features.0.weight``), of max |convnet - torch| / max |torch| (a gradient that is 0 in exact
  arithmetic is measured against 1e-3 of the largest one's scale); the step's updated weights are
  compared the same way.

Each row goes to ``--results`` as one JSON line (so that networks can run one at a time, in the
background); ``--table`` prints the Markdown table of such a file.
"""

import argparse
import contextlib
import io
import json
import logging
import re
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import convnet  # noqa: F401  (before NumPy, as convnet asks)
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

# family -> its networks (torchvision's builder names)
FAMILIES = {
    "AlexNet": ["alexnet"], "VGG": ["vgg11", "vgg11_bn"], "ResNet": ["resnet18", "resnet50"],
    "ResNeXt": ["resnext50_32x4d"], "Wide ResNet": ["wide_resnet50_2"],
    "SqueezeNet": ["squeezenet1_0", "squeezenet1_1"], "DenseNet": ["densenet121"], "Inception v3": ["inception_v3"],
    "GoogLeNet": ["googlenet"], "ShuffleNetV2": ["shufflenet_v2_x0_5"], "MobileNetV2": ["mobilenet_v2"],
    "MobileNetV3": ["mobilenet_v3_small"], "MnasNet": ["mnasnet0_5"], "EfficientNet": ["efficientnet_b0"],
    "EfficientNetV2": ["efficientnet_v2_s"], "RegNet": ["regnet_x_400mf", "regnet_y_400mf"],
    "ConvNeXt": ["convnext_tiny"],
}
NETWORKS = [name for names in FAMILIES.values() for name in names]
FAMILY_OF = {name: family for family, names in FAMILIES.items() for name in names}
EXPORTERS = ("torchscript", "dynamo")
BUILD_OPTIONS = {"googlenet": {"aux_logits": False, "init_weights": True},
                 "inception_v3": {"aux_logits": False, "init_weights": True}}


def torch_network(name, seed=0):
    """torchvision's ``name`` with random weights and batch-norm statistics away from 0 and 1."""
    import torch
    from conftest import torchvision_models

    torch.manual_seed(seed)
    model = getattr(torchvision_models(), name)(**BUILD_OPTIONS.get(name, {}))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.5, 0.5)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
            if hasattr(module, "p") and isinstance(module.p, float):  # Dropout, StochasticDepth
                module.p = 0.0
    return model


def export(model, path, x, exporter, training):
    """``model`` written to ``path`` by torch's ``exporter``, in training or evaluation mode."""
    import torch

    model.train(training)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            if exporter == "torchscript":
                mode = torch.onnx.TrainingMode.TRAINING if training else torch.onnx.TrainingMode.EVAL
                torch.onnx.export(model, (torch.from_numpy(x),), str(path), dynamo=False, input_names=["x"],
                                  opset_version=18, training=mode, do_constant_folding=not training)
            else:  # exports evaluation mode whatever the module's; unoptimised, its batch norms stay
                model.eval()
                torch.onnx.export(model, (torch.from_numpy(x),), str(path), dynamo=True, input_names=["x"],
                                  optimize=not training)
        finally:
            logging.disable(logging.NOTSET)
    return path


def convnet_key(key):
    """torch's state_dict key as `convnet.onnx.load` names it: each part letters, digits and underscores."""
    return ".".join(part for part in (re.sub(r"[^0-9A-Za-z_]+", "_", part).strip("_") for part in key.split("."))
                    if part)


def relative_error(actual, expected):
    return float(np.abs(np.asarray(actual) - np.asarray(expected)).max() / np.abs(expected).max())


def forward_error(name, exporter, size, batch, folder):
    """max |convnet - onnxruntime| / scale on the evaluation-mode export, and the seconds each part took."""
    import onnxruntime

    from convnet.onnx import load

    x = np.random.default_rng(1).standard_normal((batch, 3, size, size)).astype(np.float32)
    times = {}
    start = time.perf_counter()
    path = export(torch_network(name), folder / f"{name}_{exporter}_eval.onnx", x, exporter, training=False)
    times["export"] = time.perf_counter() - start
    start = time.perf_counter()
    loaded = load(path)
    times["load"] = time.perf_counter() - start
    start = time.perf_counter()
    with convnet.no_grad():
        ours = loaded(x).numpy()
    times["forward"] = time.perf_counter() - start
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs, = session.run(None, {session.get_inputs()[0].name: x})
    return relative_error(ours, theirs), times


def gradient_error(name, exporter, size, batch, folder):
    """One SGD step in training mode and float64, convnet's imported network against torch's: (largest
    relative error of the gradients, of the stepped weights, how many weights were compared, seconds)."""
    import torch

    import convnet.functional as F
    from convnet import optim
    from convnet.onnx import load

    x = np.random.default_rng(2).standard_normal((batch, 3, size, size))
    labels = np.arange(batch) % 1000
    start = time.perf_counter()
    path = export(torch_network(name).double(), folder / f"{name}_{exporter}_train.onnx", x, exporter, training=True)
    export_seconds = time.perf_counter() - start
    model = torch_network(name).double().train()  # the export may have run it: fresh weights and statistics
    loaded = load(path).train()
    theirs_x = torch.from_numpy(x).requires_grad_()
    torch.nn.functional.cross_entropy(model(theirs_x), torch.from_numpy(labels)).backward()
    start = time.perf_counter()
    ours_x = convnet.Tensor(x, requires_grad=True)
    F.cross_entropy(loaded(ours_x), labels).backward()
    step_seconds = time.perf_counter() - start
    # convnet's keys are torch's with what is not a letter, digit or underscore made one ("block1-0" -> "block1_0")
    torch_parameters = {convnet_key(key): parameter for key, parameter in model.named_parameters()}
    matched = [(key, parameter, torch_parameters[key]) for key, parameter in loaded.named_parameters()
               if key in torch_parameters and parameter.shape == tuple(torch_parameters[key].shape)]
    pairs = [(ours_x.grad.numpy(), theirs_x.grad.numpy())]
    pairs += [(ours.grad.numpy(), theirs.grad.numpy()) for _, ours, theirs in matched if ours.grad is not None]
    gradient = scaled_error(pairs)
    optim.SGD([ours for _, ours, _ in matched], lr=0.1).step()
    torch.optim.SGD([theirs for _, _, theirs in matched], lr=0.1).step()
    return gradient, scaled_error([(ours.numpy(), theirs.detach().numpy()) for _, ours, theirs in matched]), \
        len(pairs) - 1, export_seconds, step_seconds


def scaled_error(pairs):
    """The largest max |ours - theirs| / max |theirs| over the (ours, theirs) pairs, each scale at least
    1e-3 of the largest: a gradient 0 in exact arithmetic (the bias of a batch norm that another
    follows, or of a convolution before a batch norm) is torch's rounding noise, and a bias of zeros
    stepped by it is that noise again."""
    floor = 1e-3 * max(np.abs(theirs).max() for _, theirs in pairs)
    return max(float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), floor)) for ours, theirs in pairs)


def run(name, exporter, size, batch):
    """One row: the forward and gradient checks of ``name`` through ``exporter``."""
    from convnet.onnx import OnnxError

    row = {"network": name, "family": FAMILY_OF.get(name, name), "exporter": exporter, "size": size,
           "batch": batch, "imported": False, "refusal": ""}
    with tempfile.TemporaryDirectory() as folder:
        try:
            row["forward_error"], times = forward_error(name, exporter, size, batch, Path(folder))
            row["imported"] = True
            row.update({f"{key}_s": round(value, 1) for key, value in times.items()})
            (row["gradient_error"], row["step_error"], row["weights_compared"], _,
             row["train_step_s"]) = gradient_error(name, exporter, size, batch, Path(folder))
            row["train_step_s"] = round(row["train_step_s"], 1)
        except OnnxError as error:
            row["refusal"] = str(error).split(": ", 1)[-1]
        except Exception as error:  # a failing export or a crash: recorded, the next network still runs
            row["refusal"] = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            traceback.print_exc()
    return row


def table(rows):
    lines = ["| family | network | exporter | imported | forward error | gradient error | weights compared | "
             "forward s | train step s | refusal |", "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        figure = lambda key: f"{row[key]:.1e}" if key in row else ""  # noqa: E731
        lines.append(f"| {row['family']} | {row['network']} | {row['exporter']} | {'yes' if row['imported'] else 'no'}"
                     f" | {figure('forward_error')} | {figure('gradient_error')} | {row.get('weights_compared', '')}"
                     f" | {row.get('forward_s', '')} | {row.get('train_step_s', '')} | {row['refusal']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("networks", nargs="*", default=NETWORKS)
    parser.add_argument("--exporter", choices=EXPORTERS, action="append")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--results", type=Path, help="append each row to this file, as a JSON line")
    parser.add_argument("--table", type=Path, help="print the table of a --results file and stop")
    args = parser.parse_args()
    if args.table:
        rows = [json.loads(line) for line in args.table.read_text().splitlines() if line.strip()]
        order = {name: index for index, name in enumerate(NETWORKS)}
        print(table(sorted(rows, key=lambda row: (order.get(row["network"], len(order)), row["exporter"] == "dynamo"))))
        return
    rows = []
    for name in args.networks:
        for exporter in args.exporter or EXPORTERS:
            rows.append(run(name, exporter, args.size, args.batch))
            print(json.dumps(rows[-1]), flush=True)
            if args.results:
                with open(args.results, "a") as results:
                    results.write(json.dumps(rows[-1]) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
