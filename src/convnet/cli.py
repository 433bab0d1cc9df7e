"""The ``convnet`` command line. Errors print one line (``convnet: error: ...``) and exit 1
(set CONVNET_TRACEBACK=1 for the full traceback); bad arguments exit 2; a training run interrupted
by Ctrl-C or SIGTERM saves and exits 130 or 143."""

import argparse
import os
import re
import sys
import time
from pathlib import Path

from . import __version__
from .language import LANGUAGES
from .errors import ConvnetError

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


class CommandError(ConvnetError):
    """A user-facing failure: its message is printed as one line, without a traceback."""


# ---------------------------------------------------------------------------- commands
def _demo(args):
    from .demo import train_bars
    history = train_bars(epochs=args.epochs, seed=args.seed)
    print(f"final test accuracy: {history[-1]['test_accuracy']:.3f}")
    return 0


def _bench(args):
    from . import bench
    return bench.run(args)


TRAIN_OPTIONS = ("model", "dataset", "epochs", "batch_size", "optimizer", "lr", "weight_decay", "schedule",
                 "label_smoothing", "augment", "test_mirror", "seed", "init_from", "sync_bn", "early_stop",
                 "tensorboard", "snapshot_every", "time_budget")


def _train(args):
    from . import experiment
    from .checkpoint import WEIGHTS
    from .reports import CONFUSION
    from .train import TrainingDiverged, TrainingInterrupted
    args.group = group = _training_group(args.distributed)
    say = print if group.rank == 0 else _silent  # rank 0 speaks for the job
    progress = not args.no_progress
    created = False
    if args.resume:
        given = [f"--{name.replace('_', '-')}" for name in TRAIN_OPTIONS if getattr(args, name) is not None]
        if given:
            raise CommandError(f"--resume continues a run with its saved settings; drop {', '.join(given)}")
        run = experiment.resume(args.resume, args.data, progress, group=group)
        if run.trainer.epoch >= run.config.epochs:
            say(f"{run.run_dir} finished its {run.config.epochs} epochs already; its reports are rebuilt from "
                f"the checkpoint")
        else:
            say(f"resuming {run.run_dir} at epoch {run.trainer.epoch + 1}, batch {run.trainer.batch}")
    else:
        if args.time_budget is not None and args.epochs is not None:
            raise CommandError("give --epochs or --time-budget, not both: the budget decides the epochs")
        config = experiment.RunConfig(**{name: getattr(args, name) for name in TRAIN_OPTIONS
                                         if getattr(args, name) is not None}, data=args.data)
        run_dir = Path(args.out or f"runs/{config.model}-{time.strftime('%Y%m%d-%H%M%S')}")
        created = not run_dir.exists()
        try:
            run = experiment.start(config, run_dir, progress, group=group)
        except experiment.RunExists as exists:
            raise CommandError(f"{exists}; continue it with --resume {run_dir} or choose another --out") from None
        start = f"from the weights in {config.init_from}" if config.init_from else f"from seed {config.seed}"
        ranks = f" on {group.size} ranks (each a share of every batch of {config.batch_size})" if group.size > 1 else ""
        mirroring = "; test images are also scored mirrored (test-time mirroring)" if config.test_time_mirroring else ""
        say(f"training {config.model} on {config.dataset} ({len(run.train)} images) for {config.epochs} "
            f"epoch{'s' if config.epochs > 1 else ''} {start}{ranks}{mirroring}; run folder {run_dir}")
    if args.watch is not None and group.rank == 0:
        _watch_in_background(run.run_dir, args.watch, args.lang)
    try:
        run.trainer.fit(run.config.epochs)
    except TrainingDiverged as diverged:
        raise CommandError(f"{diverged}; {_what_is_kept(run, created)}. Try a lower learning rate (--lr)") from None
    except TrainingInterrupted as stopped:
        say(f"convnet: {stopped}; saved to {run.run_dir / WEIGHTS}; resume with: convnet train --resume "
            f"{run.run_dir}", file=sys.stderr)
        return 128 + stopped.signal_number  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
    result = run.trainer.evaluate()
    if group.rank == 0:
        _report(result, run.train.classes)
        print(f"confusion matrix: {run.run_dir / CONFUSION}")
    return 0


def _silent(*args, **options):
    pass


def _watch_in_background(run_dir, port, language):
    """`convnet watch`'s page for the run being trained, served from a daemon thread (it ends with
    the training process)."""
    import threading
    from .watch import make_server
    run_dir.mkdir(parents=True, exist_ok=True)
    server = make_server(run_dir, port=port, language=language)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("watch the run at http://%s:%d/" % server.server_address[:2], flush=True)


def _training_group(distributed):
    """The ranks this process trains among: an MPI job's with --distributed, else this process
    alone (refusing an MPI launch without --distributed, which would train N copies into one folder)."""
    from .distributed import launched_by_mpirun, world
    from .train import ONE_PROCESS
    ranks = launched_by_mpirun()
    if not distributed:
        if ranks > 1:
            raise CommandError(f"started by mpirun as one of {ranks} processes without --distributed, each would "
                               f"train its own copy into the same folder; add --distributed to train one model on "
                               f"all {ranks}")
        return ONE_PROCESS
    if ranks == 1:
        print("--distributed: not started by mpirun (mpirun -n N convnet train --distributed ...), so this is a "
              "job of one rank: training as one process")
        return ONE_PROCESS
    return world()


def _what_is_kept(run, remove_if_empty):
    """After a run diverged: which checkpoint stays, or that none was saved (and then the folder
    this run created, holding nothing but its lock and the step log of a run that cannot resume,
    goes)."""
    import shutil
    from .checkpoint import WEIGHTS
    from .reports import LOCK, SNAPSHOTS, STEPS
    if (run.run_dir / WEIGHTS).exists():
        return f"the last checkpoint in {run.run_dir} is kept"
    if remove_if_empty and {path.name for path in run.run_dir.iterdir()} <= {LOCK, STEPS, SNAPSHOTS}:
        shutil.rmtree(run.run_dir)
        return f"no epoch finished, so nothing was saved ({run.run_dir} removed)"
    return "no epoch finished, so nothing was saved"


def _report(result, classes):
    mirrored = ", each image averaged with its mirror image" if result["mirrored"] else ""
    print(f"test accuracy: {result['accuracy']:.4f} (loss {result['loss']:.4f}{mirrored})")
    for name, accuracy in zip(classes, result["per_class_accuracy"]):
        print(f"  {name:<12s} {accuracy:.4f}")


def _evaluate(args):
    from .experiment import evaluate_model
    targets = _named_model_first(args)
    if len(targets) != 1:
        raise CommandError("evaluate takes one RUN_DIR, MODEL or MODEL.onnx (or --model NAME)")
    classes, result, warnings = evaluate_model(targets[0], args.data, args.test_mirror)
    for warning in warnings:
        print(f"convnet: warning: {warning}", file=sys.stderr)
    _report(result, classes)
    if args.confusion:
        from .viz import save_confusion
        save_confusion(result["confusion"], classes, args.confusion)
        print(f"confusion matrix: {args.confusion}")
    print("confusion matrix (rows: true class, columns: predicted class, numbered as the rows):")
    print(f"  {'':<15s} " + " ".join(f"{index:5d}" for index in range(len(classes))))
    for index, (name, row) in enumerate(zip(classes, result["confusion"])):
        print(f"  {index:>2d} {name:<12s} " + " ".join(f"{count:5d}" for count in row))
    return 0


def _predict(args):
    from .data import ImageError
    from .experiment import Classifier, open_model
    targets = _named_model_first(args)
    if len(targets) < 2:
        raise CommandError("predict takes RUN_DIR, MODEL or MODEL.onnx (or --model NAME), then one or more IMAGEs")
    opened = open_model(targets[0], mirror=args.test_mirror)
    for note in opened.notes:
        print(f"note: {note}")
    classifier = Classifier(opened)
    failures = 0
    for path in targets[1:]:
        try:
            top, notes = classifier.top(path, 3)
        except ImageError as error:
            print(f"convnet: error: {error}", file=sys.stderr)
            failures += 1
            continue
        note = f" (note: {'; '.join(notes)})" if notes else ""
        print(f"{path}:{note}")
        for rank, (name, probability) in enumerate(top, 1):
            print(f"  {rank}. {name:<12s} {probability:.4f}")
    return EXIT_ERROR if failures else 0


def _named_model_first(args):
    """The command's targets with ``--model NAME`` first, where given: it names the model as a
    first target would."""
    from .models import MODELS
    if args.model is None:
        return list(args.targets)
    if args.targets and (Path(args.targets[0]).is_dir() or args.targets[0].endswith(".onnx")
                         or args.targets[0] in MODELS):
        raise CommandError(f"--model {args.model} and {args.targets[0]} both name a model; give one")
    return [args.model, *args.targets]


def _summary(args):
    from .experiment import open_model
    from .nn import summary
    opened = open_model(args.target)
    print(opened.title)
    print(summary(opened.model, (1, *opened.input_shape)))
    return 0


def _export(args):
    from .experiment import ONNX_TEST_MIRROR, export_onnx
    proto = export_onnx(args.target, args.out, args.opset)
    graph = proto.graph
    dims = ", ".join(str(dim.dim_param or dim.dim_value) for dim in graph.input[0].type.tensor_type.shape.dim)
    print(f"wrote {args.out}: {len(graph.node)} nodes, opset {proto.opset_import[0].version}, input "
          f"{graph.input[0].name!r} ({dims}); run it with onnxruntime, or: convnet evaluate {args.out}")
    if any(prop.key == ONNX_TEST_MIRROR and prop.value == "true" for prop in proto.metadata_props):
        print(f"note: {args.target} was evaluated with test-time mirroring, which the graph leaves out: average its "
              f"outputs for each image and for the image mirrored left-right to get those figures (convnet "
              f"evaluate and predict do, from the file's metadata {ONNX_TEST_MIRROR})")
    return 0


def _show(args):
    from . import viz
    from .experiment import lesson_subject, open_subject
    from .files import check_writable
    from .viz.figures import font_families
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file; expected a folder for the pictures")
    if args.lesson:
        if args.model is not None:
            raise CommandError("--lesson draws the lesson's own network; give it without --model")
        if args.test_mirror is not None:
            raise CommandError("--lesson draws an untrained network, which has no answer to mirror; give it without "
                               "--test-mirror")
        if len(args.targets) > 1:
            raise CommandError("--lesson takes at most one IMAGE")
        subject = lesson_subject(args.targets[0] if args.targets else None, args.seed, args.lang)
    else:
        args.targets = _named_model_first(args)
        if not args.targets or len(args.targets) > 2:
            raise CommandError("show takes RUN_DIR, MODEL or MODEL.onnx, then optionally an IMAGE (or --lesson "
                               "[IMAGE])")
        subject = open_subject(args.targets[0], args.targets[1] if len(args.targets) > 1 else None, args.data,
                               args.test_mirror)
    font_families(args.lang)  # a font for the language, or FontMissing before any folder is made
    check_writable(out)  # before the drawing, not after it; after the inputs, so a refused one leaves no folder
    written = viz.show(subject.model, subject.image, out, subject.title, subject.classes, layer=args.layer,
                       curves_png=subject.curves_png, notes=subject.notes, language=args.lang, mirror=subject.mirror)
    for note in subject.notes:
        print(f"note: {note}")
    print(f"wrote {len(written)} files to {out}; open {out / 'index.html'}")
    return 0


def _watch(args):
    from .watch import serve
    try:
        serve(args.run_dir, args.host, args.port, language=args.lang,
              on_ready=lambda url: print(f"watching {args.run_dir} at {url} (Ctrl-C to stop)", flush=True))
    except KeyboardInterrupt:
        pass
    return 0


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
DURATION_UNITS = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600}


def _duration(text):
    """``300``, ``300s``, ``5m``, ``5min`` or ``1.5h`` as seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|m|min|h)?", text.strip())
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 300s, 5m or 1.5h, got {text!r}")
    return float(match[1]) * DURATION_UNITS[match[2] or ""]
_positive_float = _argument_type(float, lambda value: value > 0, "a positive number")
_fraction = _argument_type(float, lambda value: 0 <= value < 1, "a number in [0, 1)")


AS_TRAINED = "default: as the run, the shipped weights or the exported file were evaluated"


def _test_mirror_option(parser, default):
    parser.add_argument("--test-mirror", action=argparse.BooleanOptionalAction, help="average each image's class "
                        "scores with its mirror image's (test-time mirroring; for networks trained on mirrored "
                        f"images); --no-test-mirror: one pass ({default})")


def _model_option(parser):
    from .models import MODELS
    parser.add_argument("--model", choices=list(MODELS), help="a zoo model with the trained weights that ship with "
                        "convnet (where it ships them; else untrained), instead of a RUN_DIR or MODEL.onnx")


def _language_option(parser, what):
    parser.add_argument("--lang", choices=LANGUAGES, default="en", help=f"{what} language: en (default) or ko "
                        "(Korean, the lesson's own; needs a font with Hangul, e.g. Debian's fonts-nanum)")


def build_parser():
    from .data.mnist import CLASSES
    from .experiment import AUGMENTATIONS, DEFAULT_LR, DEFAULT_WEIGHT_DECAY, OPTIMIZERS, SCHEDULES, RunConfig
    from .models import MODELS
    parser = argparse.ArgumentParser(prog="convnet", description="Convolutional neural networks from scratch on NumPy.")
    parser.add_argument("--version", action="version", version=f"convnet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def default(name):
        return f"default {getattr(RunConfig, name)}"

    train = commands.add_parser("train", help=f"train a CNN (default: {RunConfig.model} on {RunConfig.dataset})")
    train.add_argument("--model", choices=list(MODELS), help=default("model"))
    train.add_argument("--dataset", choices=list(CLASSES), help=default("dataset"))
    train.add_argument("--data", metavar="DIR", help="directory with the dataset's IDX files")
    train.add_argument("--epochs", type=_positive_int, help=default("epochs"))
    train.add_argument("--time-budget", type=_duration, metavar="DURATION", help="instead of --epochs: as many "
                       "epochs as fit in DURATION (300s, 5m, 1.5h) on this machine, measured by a short probe "
                       "before the run; the learning-rate schedule spans them")
    train.add_argument("--batch-size", type=_positive_int, help=default("batch_size"))
    train.add_argument("--optimizer", choices=OPTIMIZERS, help=default("optimizer"))
    train.add_argument("--lr", type=_positive_float, help="peak learning rate (default: "
                       + ", ".join(f"{name} {lr:g}" for name, lr in DEFAULT_LR.items()) + ")")
    train.add_argument("--weight-decay", type=float, help="AdamW's decoupled decay, SGD's and Adam's L2 term "
                       "(default: " + ", ".join(f"{name} {decay:g}" for name, decay in DEFAULT_WEIGHT_DECAY.items()) + ")")
    train.add_argument("--schedule", choices=SCHEDULES, help=f"learning-rate schedule, per step ({default('schedule')})")
    train.add_argument("--label-smoothing", type=_fraction, help=default("label_smoothing"))
    train.add_argument("--augment", nargs="?", const="full", metavar="{" + ",".join(AUGMENTATIONS) + "}",
                       help="what varies the training images at random: none; crop (padded by 2 pixels), flip (left-"
                       "right) or erase (a rectangle, a quarter of the images), alone or comma-separated (crop,flip); "
                       "full (also --augment alone): all three, without flips on MNIST. Default: flip on "
                       "Fashion-MNIST, none on MNIST")
    _test_mirror_option(train, "default: on when training mirrors images; the run keeps the choice for its "
                        "evaluations and for evaluate, predict, show and export")
    train.add_argument("--seed", type=int, help=f"{default('seed')}; the same seed repeats a run bit for bit")
    train.add_argument("--init-from", metavar="RUN_DIR|FILE", help="start from these weights: a run folder's, a "
                       "PyTorch state_dict (.pth, .pt; read without PyTorch) or an ONNX file's, matched by name")
    train.add_argument("--early-stop", type=_positive_int, metavar="PATIENCE", help="stop when the test loss has "
                       "not improved for PATIENCE epochs (the run folder keeps the last epoch's weights)")
    train.add_argument("--tensorboard", action="store_const", const=True, help="also write TensorBoard event "
                       "files into RUN_DIR/tensorboard (needs the tensorboard extra: tensorboardX)")
    train.add_argument("--snapshot-every", type=_positive_int, metavar="STEPS", help="draw the first convolution "
                       "layer's kernels and feature maps for the live page every STEPS steps, besides at the start "
                       f"and after every epoch ({default('snapshot_every')})")
    train.add_argument("--out", metavar="RUN_DIR", help="run folder (default runs/MODEL-TIME)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run saved in RUN_DIR")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--watch", type=int, nargs="?", const=8008, metavar="PORT", help="serve convnet watch's "
                       "live page of this run on 127.0.0.1:PORT while it trains (default 8008; 0: any free port)")
    _language_option(train, "the --watch page's")
    train.add_argument("--distributed", action="store_true", help="under mpirun -n N: train one model on the N "
                       "ranks, each taking its share of every batch (--batch-size stays the whole batch)")
    train.add_argument("--sync-bn", action="store_const", const=True, help="with --distributed: batch norm's "
                       "statistics span the whole batch, as in one process (default: each rank's share, as DDP)")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser("evaluate", help="accuracy, per-class accuracy and confusion matrix of a run")
    evaluate.add_argument("targets", nargs="*", metavar="RUN_DIR|MODEL|MODEL.onnx")
    _model_option(evaluate)
    evaluate.add_argument("--data", metavar="DIR", help="directory with the dataset's IDX files")
    evaluate.add_argument("--confusion", metavar="PNG", help="also draw the confusion matrix into this file (the "
                          "run folder's confusion.png is the training's own; evaluating writes nothing there)")
    _test_mirror_option(evaluate, AS_TRAINED)
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="top-3 classes of images, with probabilities")
    predict.add_argument("targets", nargs="*", metavar="RUN_DIR|MODEL|MODEL.onnx IMAGE")
    _model_option(predict)
    _test_mirror_option(predict, AS_TRAINED)
    predict.set_defaults(handler=_predict)

    summary = commands.add_parser("summary", help="layers, output shapes and parameter counts")
    summary.add_argument("target", metavar="MODEL|RUN_DIR|MODEL.onnx")
    summary.set_defaults(handler=_summary)

    from .onnx.export import DEFAULT_OPSET, MIN_OPSET
    export = commands.add_parser("export", help="write a run's (or a zoo model's) network as an ONNX file")
    export.add_argument("target", metavar="RUN_DIR|MODEL")
    export.add_argument("out", metavar="OUT.onnx")
    export.add_argument("--opset", type=_positive_int,
                        help=f"ONNX opset, {MIN_OPSET} to {DEFAULT_OPSET} (default: {DEFAULT_OPSET})")
    export.set_defaults(handler=_export)

    show = commands.add_parser("show", help="draw what happens inside a CNN: pictures, a GIF and an HTML page",
                               description="convnet show RUN_DIR|MODEL|MODEL.onnx [IMAGE], or convnet show --lesson "
                                           "[IMAGE]")
    show.add_argument("targets", nargs="*", metavar="RUN_DIR|MODEL|MODEL.onnx [IMAGE]")
    _model_option(show)
    show.add_argument("--lesson", action="store_true",
                      help="the lesson's network (100 kernels of 10x10, 2x2 max pooling) on a 256x256 photograph")
    show.add_argument("--out", default="show", metavar="DIR", help="where to write the pictures (default show/)")
    show.add_argument("--layer", type=int, default=0, help="which convolution layer to illustrate (default 0)")
    show.add_argument("--data", metavar="DIR", help="dataset directory (for the default test image)")
    show.add_argument("--seed", type=int, default=0, help="seed of the lesson's random kernels")
    _test_mirror_option(show, AS_TRAINED)
    _language_option(show, "the pictures' and the page's")
    show.set_defaults(handler=_show)

    watch = commands.add_parser("watch", help="a live page of a training run in the browser (standard library "
                                "only; read-only)")
    watch.add_argument("run_dir", metavar="RUN_DIR")
    watch.add_argument("--port", type=int, default=8008, help="port (default 8008; 0: any free one)")
    watch.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                       "only)")
    _language_option(watch, "the page's")
    watch.set_defaults(handler=_watch)

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
    from .distributed import MpiMissing
    from .files import WriteError
    from .language import FontMissing
    from .onnx import OnnxMissing
    from .process import retain_freed_memory
    from .reports import RunLocked, TensorBoardMissing
    from .train import TrainingDiverged
    retain_freed_memory()
    try:
        return args.handler(args)
    except (CommandError, CheckpointError, IdxError, ImageError, DownloadError, TrainingDiverged, WriteError,
            RunLocked, OnnxMissing, MpiMissing, TensorBoardMissing, FontMissing, FileNotFoundError, ValueError,
            TypeError) as error:
        if os.environ.get("CONVNET_TRACEBACK"):
            raise
        group = getattr(args, "group", None)
        if group is not None and group.size > 1:  # name the rank, and stop the others waiting for it
            print(f"convnet: rank {group.rank}: error: {error}", file=sys.stderr, flush=True)
            group.abort(EXIT_ERROR)
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
