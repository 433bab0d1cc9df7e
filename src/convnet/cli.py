"""The ``convnet`` command line."""

import argparse
import sys

from . import __version__


def _demo(args):
    from .demo import train_bars
    history = train_bars(epochs=args.epochs, seed=args.seed)
    print(f"final test accuracy: {history[-1]['test_accuracy']:.3f}")
    return 0


def _bench(args):
    from . import bench
    args.argv = sys.argv[2:]
    return bench.run(args)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="convnet", description="Convolutional neural networks from scratch on NumPy.")
    parser.add_argument("--version", action="version", version=f"convnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    demo = commands.add_parser("demo", help="train a small CNN on synthetic bar images (a few seconds)")
    demo.add_argument("--epochs", type=_positive_int, default=5, help="number of epochs (default 5)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(run=_demo)
    from .bench import add_arguments
    bench = commands.add_parser("bench", help="time convnet against PyTorch on this machine (ops, training, memory)")
    add_arguments(bench)
    bench.set_defaults(run=_bench)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
