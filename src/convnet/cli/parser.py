"""``convnet``'s argument parser: its commands, each with its own options and the groups it shares
with the others (`options.shared_groups`). Options and file arguments may come in any order, and a
wrong option shows the command's own usage."""

import argparse

from .. import __version__
from . import commands, training
from .options import add_train_options, positive_int, shared_groups

AS_NAMED = "RUN_DIR|MODEL|MODEL.onnx"


class CommandParser(argparse.ArgumentParser):
    """A command's parser: ``predict RUN --no-test-mirror a.png b.png`` reads as the same command
    with the option last, and an unknown option is refused with this command's usage."""

    _intermixing = False

    def parse_known_args(self, args=None, namespace=None):
        if self._intermixing:  # parse_known_intermixed_args' own two passes
            return super().parse_known_args(args, namespace)
        self._intermixing = True
        try:
            namespace, extras = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


def build_parser():
    parser = argparse.ArgumentParser(prog="convnet", description="Convolutional neural networks from scratch on NumPy.")
    parser.add_argument("--version", action="version", version=f"convnet {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    shared = shared_groups()

    def command(name, handler, summary, groups=()):
        """A subcommand whose help line and description are ``summary``."""
        sub = subparsers.add_parser(name, help=summary, description=summary,
                                    parents=[shared[group] for group in groups])
        sub.set_defaults(handler=handler)
        return sub

    from .. import experiment
    train = command("train", training.train, f"train a CNN (default: {experiment.RunConfig.model} on "
                    f"{experiment.RunConfig.dataset})", groups=["lang"])
    add_train_options(train)
    train.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/MODEL-TIME)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--watch", type=int, nargs="?", const=8008, metavar="PORT", help="serve convnet watch's "
                       "live page of this run on 127.0.0.1:PORT while it trains (default 8008; 0: any free port)")
    train.add_argument("--distributed", action="store_true", help="under mpirun -n N: train one model on the N "
                       "ranks, each taking its share of every batch (--batch-size stays the whole batch)")

    evaluate = command("evaluate", commands.evaluate, "accuracy, per-class accuracy and confusion matrix of a run",
                       groups=["model", "data", "test_mirror"])
    evaluate.add_argument("targets", nargs="*", metavar=AS_NAMED, help="the network to evaluate")
    evaluate.add_argument("--confusion", metavar="PNG", help="also draw the confusion matrix into this file (the "
                          "run folder's own is the training's; evaluating writes nothing there)")

    predict = command("predict", commands.predict, "top-3 classes of images, with probabilities",
                      groups=["model", "test_mirror"])
    predict.add_argument("targets", nargs="*", metavar=f"{AS_NAMED} IMAGE|FOLDER",
                         help="the network (unless --model names it), then one or more images or folders (their "
                              "images at any depth, one answer each)")
    predict.add_argument("--csv", metavar="OUT", help="also write the answers to OUT as CSV: path, class, "
                         "probability, then the second and third classes with theirs")

    summary = command("summary", commands.summary, "layers, output shapes and parameter counts", groups=["model"])
    summary.add_argument("targets", nargs="*", metavar=AS_NAMED, help="the network to describe")
    summary.add_argument("--depth", type=int, default=None, help="nested modules shown down to this depth (0: the "
                         "model alone; default: all), the deeper ones counted in theirs, as torchinfo's depth")

    from ..onnx.export import DEFAULT_OPSET, MIN_OPSET
    export = command("export", commands.export, "write a run's (or a zoo model's) network as an ONNX file",
                     groups=["model"])
    export.add_argument("targets", nargs="*", metavar="RUN_DIR|MODEL OUT.onnx",
                        help="the network (unless --model names it), then the file to write")
    export.add_argument("--opset", type=positive_int,
                        help=f"ONNX opset, {MIN_OPSET} to {DEFAULT_OPSET} (default {DEFAULT_OPSET})")

    show = command("show", commands.show, "draw what happens inside a CNN: pictures, a GIF and an HTML page",
                   groups=["model", "data", "test_mirror", "lang"])
    show.add_argument("targets", nargs="*", metavar=f"{AS_NAMED} [IMAGE]",
                      help="the network (unless --model or --lesson names it), then optionally an image")
    show.add_argument("--lesson", action="store_true",
                      help="the lesson's network (100 kernels of 10x10, 2x2 max pooling) on a 256x256 photograph")
    show.add_argument("--out", default="show", metavar="DIR", help="where to write the pictures (default show/)")
    show.add_argument("--layer", type=int, default=0, help="which convolution layer to illustrate (default 0)")
    show.add_argument("--seed", type=int, default=0, help="seed of the lesson's random kernels (default 0)")
    show.add_argument("--weights", metavar="FILE.pth", help="for an ImageNet architecture (--model resnet18, ...): "
                      "its weights from a torchvision state_dict file, read without PyTorch")

    watch = command("watch", commands.watch, "a live page of a training run in the browser (standard library "
                    "only; read-only)", groups=["lang"])
    watch.add_argument("run_dir", metavar="RUN_DIR", help="the run folder to watch, being trained or finished")
    watch.add_argument("--port", type=int, default=8008, help="port (default 8008; 0: any free one)")
    watch.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                       "only)")

    download = command("download", commands.download, "fetch and verify a dataset into the user cache")
    download.add_argument("dataset", choices=["fashion-mnist", "cifar10", "cifar100"], help="the dataset to fetch")
    download.add_argument("--dir", help="where to put the files (default: the user cache)")
    download.add_argument("--url", help="a mirror to download from instead of the official location")

    demo = command("demo", commands.demo, "train a small CNN on synthetic bar images (a few seconds)")
    demo.add_argument("--epochs", type=positive_int, default=5, help="number of epochs (default 5)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")

    from ..bench import add_arguments
    bench = command("bench", commands.bench, "time convnet against PyTorch on this machine (ops, training, memory)")
    add_arguments(bench)
    return parser
