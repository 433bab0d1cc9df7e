"""The ``convnet`` command line. Errors print one line (``convnet: error: ...``) and exit 1
(set CONVNET_TRACEBACK=1 for the full traceback); bad arguments exit 2; an interrupted
training run exits 130 after saving."""

import argparse
import os
import sys
import time
from pathlib import Path

from . import __version__

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


class CommandError(Exception):
    """A user-facing failure: its message is printed as one line, without a traceback."""


# ---------------------------------------------------------------------------- commands
def _demo(args):
    from .demo import train_bars
    history = train_bars(epochs=args.epochs, seed=args.seed)
    print(f"final test accuracy: {history[-1]['test_accuracy']:.3f}")
    return 0


def _bench(args):
    from . import bench
    args.argv = sys.argv[2:]
    return bench.run(args)


TRAIN_OPTIONS = ("model", "dataset", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule",
                 "label_smoothing", "augment", "seed")


def _train(args):
    from .experiment import RunConfig, build_trainer, load_datasets
    from .train import TrainingInterrupted, evaluate
    if args.resume:
        given = [f"--{name.replace('_', '-')}" for name in TRAIN_OPTIONS if getattr(args, name) is not None]
        if given:
            raise CommandError(f"--resume continues a run with its saved settings; drop {', '.join(given)}")
        from .checkpoint import load
        _, _, meta = load(args.resume)
        config = RunConfig.from_dict({**meta["config"], "data": args.data or meta["config"].get("data")})
        run_dir = Path(args.resume)
    else:
        config = RunConfig(**{name: getattr(args, name) for name in TRAIN_OPTIONS if getattr(args, name) is not None},
                           data=args.data)
        run_dir = Path(args.out or f"runs/{config.model}-{time.strftime('%Y%m%d-%H%M%S')}")
        _check_run_dir(run_dir)
    train, test = load_datasets(config)
    trainer = build_trainer(config, train, test, run_dir, progress=not args.no_progress)
    if args.resume:
        trainer.resume()
        print(f"resuming {run_dir} at epoch {trainer.epoch + 1}, batch {trainer.batch}")
    else:
        print(f"training {config.model} on {config.dataset} ({len(train)} images) for {config.epochs} epoch{'s' if config.epochs > 1 else ''}; "
              f"run folder {run_dir}")
    try:
        trainer.fit(config.epochs)
    except TrainingInterrupted as stopped:
        print(f"convnet: {stopped}", file=sys.stderr)
        return EXIT_INTERRUPTED
    result = evaluate(trainer.model, trainer.test_loader)
    _report(result, train.classes, run_dir)
    return 0


def _check_run_dir(run_dir):
    from .checkpoint import WEIGHTS
    if (run_dir / WEIGHTS).exists():
        raise CommandError(f"{run_dir} already holds a run; continue it with --resume {run_dir} "
                           f"or choose another --out")


def _report(result, classes, run_dir):
    from .viz import save_confusion
    print(f"test accuracy: {result['accuracy']:.4f} (loss {result['loss']:.4f})")
    for name, accuracy in zip(classes, result["per_class_accuracy"]):
        print(f"  {name:<12s} {accuracy:.4f}")
    if run_dir is not None:
        save_confusion(result["confusion"], classes, Path(run_dir) / "confusion.png")
        print(f"confusion matrix: {Path(run_dir) / 'confusion.png'}")


def _evaluate(args):
    from .experiment import load_datasets, load_run, normalize
    from .data.loader import DataLoader
    from .train import evaluate
    config, model, _ = load_run(args.run_dir)
    if args.data:
        config.data = args.data
    _, test = load_datasets(config)
    result = evaluate(model, DataLoader(test, 1000, transform=normalize(config)))
    _report(result, test.classes, args.run_dir)
    print("confusion matrix (rows: true, columns: predicted):")
    for name, row in zip(test.classes, result["confusion"]):
        print(f"  {name:<12s} " + " ".join(f"{count:5d}" for count in row))
    return 0


def _predict(args):
    import numpy as np

    from . import functional as F
    from .data import CLASSES, ImageError, read_image
    from .experiment import load_run, normalize
    from .tensor import Tensor, no_grad
    config, model, _ = load_run(args.run_dir)
    classes = CLASSES[config.dataset]
    failures = 0
    for path in args.images:
        try:
            pixels, notes = read_image(path, size=(28, 28), channels=1)
        except ImageError as error:
            print(f"convnet: error: {error}", file=sys.stderr)
            failures += 1
            continue
        batch = normalize(config)(pixels[None].astype(np.float32) / 255)
        with no_grad():
            probabilities = F.softmax(model(Tensor(batch)), dim=1).numpy()[0]
        top = np.argsort(probabilities)[::-1][:3]
        note = f" (note: {'; '.join(notes)})" if notes else ""
        print(f"{path}:{note}")
        for rank, index in enumerate(top, 1):
            print(f"  {rank}. {classes[index]:<12s} {probabilities[index]:.4f}")
    return EXIT_ERROR if failures else 0


def _summary(args):
    from .nn import summary
    model, _, _, title = _model_for(args.target, None)
    print(title)
    print(summary(model, (1, 1, 28, 28)))
    return 0


LESSON_IMAGE = "grace_hopper.jpg"  # a photograph that matplotlib ships, so the lesson needs no download


def _show(args):
    import numpy as np

    from . import nn, viz
    from .data import CLASSES, read_image
    if args.lesson:
        if len(args.targets) > 1:
            raise CommandError("--lesson takes at most one IMAGE")
        from matplotlib import cbook

        from .random import manual_seed
        manual_seed(args.seed)
        model = nn.Sequential(nn.Conv2d(1, 100, kernel_size=10), nn.ReLU(), nn.MaxPool2d(2))
        size, classes, config, run_dir = (256, 256), (), None, None
        image_path = args.targets[0] if args.targets else cbook.get_sample_data(LESSON_IMAGE, asfileobj=False)
        title = "The lesson: 100 kernels of 10x10 over a 256x256 image, then 2x2 max pooling (untrained kernels)"
    else:
        if not args.targets or len(args.targets) > 2:
            raise CommandError("show takes RUN_DIR or MODEL, then optionally an IMAGE (or --lesson [IMAGE])")
        model, config, run_dir, title = _model_for(args.targets[0], args.data)
        size, classes = (28, 28), CLASSES[config.dataset]
        image_path = args.targets[1] if len(args.targets) > 1 else None
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    channels = convs[0].in_channels if convs else 1
    if image_path is None:
        from .experiment import load_datasets
        _, test = load_datasets(config)
        pixels, notes = test.images[0], [f"no IMAGE given: the first {config.dataset} test image "
                                         f"({classes[test.labels[0]]})"]
    else:
        pixels, notes = read_image(image_path, size=size, channels=channels)
        notes = [f"{image_path}: {note}" for note in notes]
    image = pixels.astype(np.float32) / 255
    if config is not None:
        from .experiment import normalize
        image = normalize(config)(image[None])[0]
    story = viz.tell(model, image, layer=args.layer, classes=classes)
    curves = (Path(run_dir) / "curves.png").read_bytes() if run_dir and (Path(run_dir) / "curves.png").exists() \
        else None
    out = Path(args.out)
    written = viz.render(story, out, title, summary=nn.summary(model, (1,) + image.shape), curves_png=curves,
                         notes=notes)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {len(written)} files to {out}; open {out / 'index.html'}")
    return 0


def _model_for(target, data):
    """(model, config, run folder or None, title) for a run folder or a model name."""
    from .experiment import RunConfig, build_model, load_run
    from .models import MODELS
    if Path(target).is_dir():
        config, model, _ = load_run(target)
        return model, config, target, f"{config.model} trained in {target}"
    if target in MODELS:
        from .random import manual_seed
        manual_seed(0)
        config = RunConfig(model=target, data=data)
        return build_model(config), config, None, f"{target} (untrained)"
    raise CommandError(f"{target} is neither a run folder nor a model ({', '.join(MODELS)})")


def _download(args):
    from .data.download import download
    directory = download(args.dataset, args.dir, args.url)
    print(f"{args.dataset} is in {directory}")
    return 0


# ---------------------------------------------------------------------------- parser
def _argument_type(convert, accept, expected):
    """An argparse type that converts with ``convert`` and rejects values failing ``accept``."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value
    return parse


_positive_int = _argument_type(int, lambda value: value >= 1, "a positive integer")
_positive_float = _argument_type(float, lambda value: value > 0, "a positive number")
_fraction = _argument_type(float, lambda value: 0 <= value < 1, "a number in [0, 1)")


def build_parser():
    from .experiment import NORMALIZATION
    from .models import MODELS
    from .train import OPTIMIZERS, SCHEDULES
    parser = argparse.ArgumentParser(prog="convnet", description="Convolutional neural networks from scratch on NumPy.")
    parser.add_argument("--version", action="version", version=f"convnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a CNN (default: the reference CNN on Fashion-MNIST)")
    train.add_argument("--model", choices=list(MODELS), help="default reference_cnn")
    train.add_argument("--dataset", choices=list(NORMALIZATION), help="default fashion-mnist")
    train.add_argument("--data", metavar="DIR", help="directory with the dataset's IDX files")
    train.add_argument("--epochs", type=_positive_int, help="default 10")
    train.add_argument("--batch-size", type=_positive_int, help="default 128")
    train.add_argument("--optimizer", choices=OPTIMIZERS, help="default adamw")
    train.add_argument("--lr", type=_positive_float, help="peak learning rate (default 0.002; sgd 0.05)")
    train.add_argument("--weight-decay", type=float, help="default 5e-4")
    train.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule, per step (default onecycle)")
    train.add_argument("--label-smoothing", type=_fraction, help="default 0")
    train.add_argument("--augment", action="store_const", const=True,
                       help="random crops, flips (Fashion-MNIST) and erasing")
    train.add_argument("--seed", type=int, help="default 0; the same seed repeats a run bit for bit")
    train.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/MODEL-TIME)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix of a run")
    evaluate.add_argument("run_dir", metavar="RUN_DIR")
    evaluate.add_argument("--data", metavar="DIR", help="directory with the dataset's IDX files")
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="top-3 classes of images, with probabilities")
    predict.add_argument("run_dir", metavar="RUN_DIR")
    predict.add_argument("images", metavar="IMAGE", nargs="+")
    predict.set_defaults(handler=_predict)

    summary = commands.add_parser("summary", help="layers, output shapes and parameter counts")
    summary.add_argument("target", metavar="MODEL|RUN_DIR")
    summary.set_defaults(handler=_summary)

    show = commands.add_parser("show", help="draw what happens inside a CNN: pictures, a GIF and an HTML page",
                               description="convnet show RUN_DIR|MODEL [IMAGE], or convnet show --lesson [IMAGE]")
    show.add_argument("targets", nargs="*", metavar="RUN_DIR|MODEL [IMAGE]")
    show.add_argument("--lesson", action="store_true",
                      help="the lesson's network (100 kernels of 10x10, 2x2 max pooling) on a 256x256 photograph")
    show.add_argument("--out", default="show", metavar="DIR", help="where to write the pictures (default show/)")
    show.add_argument("--layer", type=int, default=0, help="which convolution layer to illustrate (default 0)")
    show.add_argument("--data", metavar="DIR", help="dataset directory (for the default test image)")
    show.add_argument("--seed", type=int, default=0, help="seed of the lesson's random kernels")
    show.set_defaults(handler=_show)

    download = commands.add_parser("download", help="fetch and verify a dataset into the user cache")
    download.add_argument("dataset", choices=["fashion-mnist"])
    download.add_argument("--dir", help="where to put the files (default: the user cache)")
    download.add_argument("--url", help="a mirror to download from instead of the official location")
    download.set_defaults(handler=_download)

    demo = commands.add_parser("demo", help="train a small CNN on synthetic bar images (a few seconds)")
    demo.add_argument("--epochs", type=_positive_int, default=5, help="number of epochs (default 5)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(handler=_demo)

    from .bench import add_arguments
    bench = commands.add_parser("bench", help="time convnet against PyTorch on this machine (ops, training, memory)")
    add_arguments(bench)
    bench.set_defaults(handler=_bench)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from .checkpoint import CheckpointError
    from .data import IdxError, ImageError
    from .data.download import DownloadError
    from .train import TrainingDiverged
    try:
        return args.handler(args)
    except (CommandError, CheckpointError, IdxError, ImageError, DownloadError, TrainingDiverged, FileNotFoundError,
            ValueError, TypeError) as error:
        if os.environ.get("CONVNET_TRACEBACK"):
            raise
        print(f"convnet: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("convnet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (convnet summary ... | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
