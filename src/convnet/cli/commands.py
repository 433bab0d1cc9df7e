"""The commands that use a trained network, and the small ones: each reads its parsed arguments,
asks `experiment` (or the module that does the work) and prints the outcome."""

import sys
from pathlib import Path

from .. import experiment
from ..errors import ConvnetError

EXIT_ERROR = 1


class CommandError(ConvnetError, ValueError):
    """Arguments that each parse but do not go together; printed as one line, without a traceback."""


def views(mirror, translate):
    """How test images are also scored (`nn.tta_views`): "mirrored", "shifted 1 px down-right and
    up-left", both joined by "and", or "" for the image alone."""
    shifted = f"shifted {translate} px down-right and up-left" if translate else ""
    return " and ".join(part for part in ("mirrored" if mirror else "", shifted) if part)


def report(result, classes):
    """Print an evaluation's accuracy and loss, then each class's accuracy."""
    mirror, translate = result["mirrored"], result["translate"]
    averaged = (f", each image averaged with its views {views(mirror, translate)}" if translate else
                ", each image averaged with its mirror image" if mirror else "")
    print(f"test accuracy: {result['accuracy']:.4f} (loss {result['loss']:.4f}{averaged})")
    for name, accuracy in zip(classes, result["per_class_accuracy"]):
        print(f"  {name:<12s} {accuracy:.4f}")


def evaluate(args):
    targets = _named_model_first(args)
    if len(targets) != 1:
        raise CommandError("evaluate takes one RUN_DIR, MODEL or MODEL.onnx (or --model NAME)")
    classes, result, warnings = experiment.evaluate_model(targets[0], args.data, args.test_mirror)
    for warning in warnings:
        print(f"convnet: warning: {warning}", file=sys.stderr)
    report(result, classes)
    if args.confusion:
        from ..viz import save_confusion
        save_confusion(result["confusion"], classes, args.confusion)
        print(f"confusion matrix: {args.confusion}")
    print("confusion matrix (rows: true class, columns: predicted class, numbered as the rows):")
    print(f"  {'':<15s} " + " ".join(f"{index:5d}" for index in range(len(classes))))
    for index, (name, row) in enumerate(zip(classes, result["confusion"])):
        print(f"  {index:>2d} {name:<12s} " + " ".join(f"{count:5d}" for count in row))
    return 0


def predict(args):
    from ..data import ImageError
    targets = _named_model_first(args)
    if len(targets) < 2:
        raise CommandError("predict takes RUN_DIR, MODEL or MODEL.onnx (or --model NAME), then one or more IMAGEs")
    loaded = experiment.load_model(targets[0], mirror=args.test_mirror)
    images = _image_paths(targets[1:])
    for note in loaded.notes:
        print(f"note: {note}")
    classifier = experiment.Classifier(loaded)
    failures, rows = 0, []
    for path in images:
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
        rows.append([path, *(value for pair in top for value in (pair[0], f"{pair[1]:.6f}"))])
    if args.csv:
        _write_predictions(args.csv, rows, min(3, len(loaded.classes)))
        print(f"wrote {len(rows)} rows to {args.csv}")
    return EXIT_ERROR if failures else 0


def _image_paths(targets):
    """The image files named by ``targets``: each file as given, each folder's images at any depth
    (sorted; hidden files and other files passed over)."""
    from ..data.folders import images_under
    paths = []
    for target in targets:
        if Path(target).is_dir():
            found, _ = images_under(target)
            if not found:
                raise CommandError(f"{target}: no images in this folder or below (expected .png, .jpg, ... files)")
            paths += found
        else:
            paths.append(target)
    return paths


def _write_predictions(out, rows, k):
    """``out`` as CSV: path, the likeliest class and its probability, then the next ``k`` - 1."""
    import csv
    import io
    from ..files import atomic_write
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["path", "class", "probability",
                     *(f"{name}_{rank}" for rank in range(2, k + 1) for name in ("class", "probability"))])
    writer.writerows(rows)
    atomic_write(Path(out), text.getvalue())


def _named_model_first(args):
    """The command's targets with ``--model NAME`` first, where given: it names the model as a
    first target would."""
    from ..models import MODELS
    if args.model is None:
        return list(args.targets)
    if args.targets and (Path(args.targets[0]).is_dir() or args.targets[0].endswith(".onnx")
                         or args.targets[0] in MODELS):
        raise CommandError(f"--model {args.model} and {args.targets[0]} both name a model; give one")
    return [args.model, *args.targets]


def summary(args):
    from ..experiment.show_input import model_to_summarise
    from ..nn import summary as layer_table
    targets = _named_model_first(args)
    if len(targets) != 1:
        raise CommandError("summary takes one RUN_DIR, MODEL or MODEL.onnx (or --model NAME)")
    title, model, input_shape = model_to_summarise(targets[0])
    print(title)
    print(layer_table(model, (1, *input_shape), depth=args.depth))
    return 0


def export(args):
    # Not _named_model_first: the file to write, OUT.onnx, may follow --model NAME.
    targets = [args.model, *args.targets] if args.model else args.targets
    if len(targets) != 2:
        raise CommandError("export takes RUN_DIR or MODEL (or --model NAME), then OUT.onnx")
    target, out = targets
    proto = experiment.export_onnx(target, out, args.opset)
    graph = proto.graph
    dims = ", ".join(str(dim.dim_param or dim.dim_value) for dim in graph.input[0].type.tensor_type.shape.dim)
    print(f"wrote {out}: {len(graph.node)} nodes, opset {proto.opset_import[0].version}, input "
          f"{graph.input[0].name!r} ({dims}); run it with onnxruntime, or: convnet evaluate {out}")
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    mirror_key, translate_key = experiment.ONNX_TEST_MIRROR, experiment.ONNX_TEST_TRANSLATE
    mirror, translate = metadata.get(mirror_key) == "true", int(metadata.get(translate_key, 0))
    if translate:
        print(f"note: {target} was evaluated with test-time views, which the graph leaves out: average its outputs "
              f"for each image and its views {views(mirror, translate)} (weights: docs/onnx.md) to get those "
              f"figures (convnet evaluate and predict do, from the file's metadata {mirror_key} and {translate_key})")
    elif mirror:
        print(f"note: {target} was evaluated with test-time mirroring, which the graph leaves out: average its "
              f"outputs for each image and for the image mirrored left-right to get those figures (convnet "
              f"evaluate and predict do, from the file's metadata {mirror_key})")
    return 0


def show(args):
    from .. import viz
    from ..files import check_writable
    from ..viz.figures import font_families
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
        if args.weights is not None:
            raise CommandError("--lesson draws its own untrained network; --weights is for an ImageNet architecture")
        shown = experiment.lesson_on_image(args.targets[0] if args.targets else None, args.seed, args.lang)
    else:
        targets = _named_model_first(args)
        if not targets or len(targets) > 2:
            raise CommandError("show takes RUN_DIR, MODEL or MODEL.onnx, then optionally an IMAGE (or --lesson "
                               "[IMAGE])")
        shown = experiment.model_on_image(targets[0], targets[1] if len(targets) > 1 else None, args.data,
                                          args.test_mirror, args.weights)
    font_families(args.lang)  # a font for the language, or FontMissing before any folder is made
    check_writable(out)  # before the drawing, not after it; after the inputs, so a refused one leaves no folder
    written = viz.show(shown.model, shown.image, out, shown.title, shown.classes, layer=args.layer,
                       curves_png=shown.curves_png, notes=shown.notes, language=args.lang, mirror=shown.mirror)
    for note in shown.notes:
        print(f"note: {note}")
    print(f"wrote {len(written)} files to {out}; open {out / 'index.html'}")
    return 0


def watch(args):
    from ..watch import serve
    try:
        serve(args.run_dir, args.host, args.port, language=args.lang,
              on_ready=lambda url: print(f"watching {args.run_dir} at {url} (Ctrl-C to stop)", flush=True))
    except KeyboardInterrupt:
        pass
    return 0


def download(args):
    from ..data.download import download as fetch
    directory = fetch(args.dataset, args.dir, args.url)
    print(f"{args.dataset} is in {directory}")
    return 0


def demo(args):
    from ..demo import train_bars
    history = train_bars(epochs=args.epochs, seed=args.seed)
    print(f"final test accuracy: {history[-1]['test_accuracy']:.3f}")
    return 0


def bench(args):
    from .. import bench as measure
    return measure.run(args)
