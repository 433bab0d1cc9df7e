"""How well a zoo network learns the shapes dataset (`convnet.data.shapes`) in about a minute.

    python benchmarks/shapes_accuracy.py --seconds 60
    python benchmarks/shapes_accuracy.py --epochs 10

writes the dataset (``--per-class`` training and ``--val-per-class`` validation images per class,
64x64 RGB) into a temporary folder, reads it back with Pillow, trains ``--model`` (built for 3
channels, 64x64, 4 classes) with Adam for ``--epochs`` epochs, or until ``--seconds`` are spent
(whole epochs: the last one that starts before then finishes), and prints the validation accuracy
after each epoch and the times taken. The accuracy after a number of epochs is the same on every
machine; the time depends on the machine and its load.
"""

import argparse
import tempfile
import time
from pathlib import Path

import convnet  # noqa: F401  (first: it sets BLAS's idle wait, which NumPy's BLAS reads when it loads)
import numpy as np
from PIL import Image

from convnet import models, optim
from convnet.data import ArrayDataset, DataLoader, shapes
from convnet.data.shapes import CLASSES
from convnet.data.transforms import Normalize
from convnet.process import available_cores
from convnet.train import Trainer


def read_split(folder):
    """(images uint8 (N, 3, H, W), labels int64 (N,)) of an ImageFolder split, classes in CLASSES order."""
    images, labels = [], []
    for label, kind in enumerate(CLASSES):
        for path in sorted((folder / kind).glob("*.png")):
            with Image.open(path) as image:
                images.append(np.asarray(image.convert("RGB")).transpose(2, 0, 1))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet5", help="a zoo model (default lenet5)")
    parser.add_argument("--seconds", type=float, default=60.0, help="training time budget (default 60)")
    parser.add_argument("--epochs", type=int, help="train exactly this many epochs instead (no time budget)")
    parser.add_argument("--per-class", type=int, default=1000, help="training images per class (default 1000)")
    parser.add_argument("--val-per-class", type=int, default=100, help="validation images per class (default 100)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        start = time.perf_counter()
        print(shapes(root, per_class=args.per_class, val_per_class=args.val_per_class, seed=args.seed))
        written = time.perf_counter() - start
        train_images, train_labels = read_split(Path(root) / "train")
        val_images, val_labels = read_split(Path(root) / "val")
        print(f"written in {written:.1f} s, read back in {time.perf_counter() - start - written:.1f} s")

    # Per-channel mean and standard deviation of the training pixels, as a run records them.
    scaled = train_images.astype(np.float32) / 255
    mean, std = scaled.mean(axis=(0, 2, 3)), scaled.std(axis=(0, 2, 3))
    normalize = Normalize(mean, std)
    train = ArrayDataset(train_images, train_labels, CLASSES)
    val = ArrayDataset(val_images, val_labels, CLASSES)
    convnet.random.manual_seed(args.seed)
    model = models.build(args.model, in_channels=3, image_size=64, classes=len(CLASSES))
    trainer = Trainer(model, DataLoader(train, args.batch_size, shuffle=True, seed=args.seed, transform=normalize),
                      DataLoader(val, 256, transform=normalize), optim.Adam(model.parameters(), args.lr))
    print(f"{args.model}: {sum(p.data.size for p in model.parameters()):,} parameters, {available_cores()} cores, "
          f"{len(train):,} training / {len(val):,} validation images, batch {args.batch_size}, Adam lr {args.lr}")
    start = time.perf_counter()
    epoch = 0
    while epoch < args.epochs if args.epochs else time.perf_counter() - start < args.seconds:
        epoch += 1
        record = trainer.fit(epoch)[-1]
        print(f"epoch {epoch}: {time.perf_counter() - start:5.1f} s, train accuracy "
              f"{record['train_accuracy']:.3f}, validation accuracy {record['test_accuracy']:.3f}", flush=True)
    print(f"validation accuracy {trainer.history[-1]['test_accuracy']:.3f} after {epoch} epochs in "
          f"{time.perf_counter() - start:.0f} s of training")


if __name__ == "__main__":
    main()
