"""A seconds-long demonstration: a small CNN learns to tell horizontal from vertical bars.

The images are synthetic (a bright bar at a random place on noise), so the demo needs no
download; it exercises convolution, pooling, dense layers, backpropagation and Adam end to end.
"""

import time

import numpy as np

from . import functional as F
from . import nn, optim
from .random import manual_seed
from .tensor import Tensor, no_grad


def bars(count, size=12, generator=None):
    """``count`` images (count, 1, size, size) float32, labels (count,) int64: 0 horizontal, 1 vertical."""
    rng = generator if generator is not None else np.random.default_rng(0)
    images = rng.normal(0.0, 0.3, (count, 1, size, size)).astype(np.float32)
    labels = rng.integers(0, 2, count)
    positions = rng.integers(1, size - 1, count)
    for image, label, position in zip(images, labels, positions):
        if label == 0:
            image[0, position, 1:-1] += 1.0
        else:
            image[0, 1:-1, position] += 1.0
    return images, labels


def bar_classifier(size=12):
    """conv 3x3 (8 kernels) - ReLU - max pool 2 - dense 2: the lesson in miniature."""
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(8 * (size // 2) ** 2, 2))


def accuracy(model, images, labels):
    with no_grad():
        return float((model(Tensor(images)).numpy().argmax(axis=1) == labels).mean())


def train_bars(epochs=5, batch_size=32, seed=0, log=print):
    """Train `bar_classifier` on 512 synthetic images; return the per-epoch history."""
    manual_seed(seed)
    rng = np.random.default_rng(seed)
    train_images, train_labels = bars(512, generator=rng)
    test_images, test_labels = bars(256, generator=rng)
    model = bar_classifier()
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    history = []
    for epoch in range(1, epochs + 1):
        start, losses = time.perf_counter(), []
        for batch in np.split(rng.permutation(len(train_images)), len(train_images) // batch_size):
            loss = F.cross_entropy(model(Tensor(train_images[batch])), train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        record = dict(epoch=epoch, loss=float(np.mean(losses)), test_accuracy=accuracy(model, test_images, test_labels),
                      seconds=time.perf_counter() - start)
        history.append(record)
        log(f"epoch {epoch}: loss {record['loss']:.4f}, test accuracy {record['test_accuracy']:.3f} "
            f"({record['seconds']:.2f} s)")
    return history
