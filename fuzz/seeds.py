"""Write the seed corpus: small valid inputs for every target, as fuzz/corpus/<target>/seed-*.

    python fuzz/seeds.py

The seeds are committed (they are inputs, not data); this script says how each was made and
rewrites them byte for byte the same. Found crashes live beside them as crash-* files.
"""

import gzip
import io
import json
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import convnet.random  # noqa: E402
from convnet import checkpoint, experiment, manual_seed, nn, optim  # noqa: E402
from convnet.data import write_idx  # noqa: E402
from fuzz.targets import CORPUS, MNIST_SEPARATOR, run_meta_tensors  # noqa: E402


def _idx(array, compressed=False):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / ("a.gz" if compressed else "a")
        write_idx(path, array)
        data = path.read_bytes()
    # gzip records the file name and time; drop both so the seeds are the same on every run
    return gzip.compress(gzip.decompress(data), mtime=0) if compressed else data


def idx_seeds():
    images = (np.arange(2 * 4 * 4) * 7 % 256).astype(np.uint8).reshape(2, 4, 4)
    return {
        "seed-images-u8.idx": _idx(images),
        "seed-images-u8.idx.gz": _idx(images, compressed=True),
        "seed-labels-u8.idx": _idx(np.array([3, 1, 4], np.uint8)),
        "seed-i16-2d.idx": _idx(np.array([[1, -2], [300, -400]], np.int16)),
        "seed-i32-1d.idx": _idx(np.array([7, -70000], np.int32)),
        "seed-f4-1d.idx": _idx(np.array([0.5, -1.25], np.float32)),
        "seed-f8-4d.idx.gz": _idx(np.arange(4, dtype=np.float64).reshape(1, 2, 1, 2), compressed=True),
        "seed-i8-3d.idx": _idx(np.array([[[-1, 2]]], np.int8)),
    }


def mnist_seeds():
    images = (np.arange(3 * 4 * 4) * 11 % 256).astype(np.uint8).reshape(3, 4, 4)
    labels = np.array([0, 9, 5], np.uint8)
    return {
        "seed-plain": _idx(images) + MNIST_SEPARATOR + _idx(labels),
        "seed-gzip": _idx(images, compressed=True) + MNIST_SEPARATOR + _idx(labels, compressed=True),
    }


def _image(mode, size, format, **options):
    pixels = (np.arange(size[0] * size[1] * len(mode if mode in ("RGB", "RGBA", "LA") else "L")) * 37 % 256)
    if mode in ("RGB", "RGBA", "LA"):
        array = pixels.astype(np.uint8).reshape(size[1], size[0], len(mode))
    elif mode == "I;16":
        array = (pixels * 257).astype(np.uint16).reshape(size[1], size[0])
    elif mode == "F":
        array = (pixels / 255).astype(np.float32).reshape(size[1], size[0])
    else:
        array = pixels.astype(np.uint8).reshape(size[1], size[0])
    image = Image.fromarray(array)  # the mode follows from the dtype and the channels
    if mode == "P":
        image = image.convert("P")
    if mode == "1":
        image = image.convert("1")
    out = io.BytesIO()
    image.save(out, format, **options)
    return out.getvalue()


def image_seeds():
    out = io.BytesIO()  # two frames, the first with a transparent palette entry
    frames = [Image.new("P", (5, 4), 1), Image.new("P", (5, 4), 2)]
    frames[0].putpixel((0, 0), 0)
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], transparency=0)
    rotated = Image.new("L", (4, 3), 200)
    exif = rotated.getexif()
    exif[0x0112] = 6  # EXIF orientation: turned 90 degrees
    rotated_jpeg = io.BytesIO()
    rotated.save(rotated_jpeg, "JPEG", exif=exif, quality=50)
    return {
        "seed-gray.png": _image("L", (6, 5), "PNG"),
        "seed-rgba.png": _image("RGBA", (4, 4), "PNG"),
        "seed-16bit.png": _image("I;16", (4, 3), "PNG"),
        "seed-palette.png": _image("P", (4, 4), "PNG"),
        "seed-bilevel.png": _image("1", (8, 2), "PNG"),
        "seed-rgb.jpg": _image("RGB", (8, 8), "JPEG", quality=50),
        "seed-exif-rotated.jpg": rotated_jpeg.getvalue(),
        "seed-animated.gif": out.getvalue(),
        "seed-gray.bmp": _image("L", (3, 3), "BMP"),
        "seed-float.tif": _image("F", (3, 2), "TIFF"),
        "seed-rgb.webp": _image("RGB", (4, 4), "WEBP", lossless=True),
    }


def _checkpoint_bytes(model, optimizer, meta, legacy=False):
    with tempfile.TemporaryDirectory() as folder:
        checkpoint.save(folder, model, optimizer, meta)
        data = (Path(folder) / checkpoint.WEIGHTS).read_bytes()
    if not legacy:
        return data
    # As convnet wrote them before it recorded SHA-256s: no digests, so a mutation gets past them.
    from safetensors.numpy import load, save
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    meta = json.loads(header["__metadata__"]["convnet"])
    del meta["sha256"]
    return save(load(data), metadata={"convnet": json.dumps(meta, indent=1)})


def _trained_tiny():
    """A tiny model and an Adam that took one step: weights, batch-norm buffers and optimizer state."""
    from convnet import functional as F
    manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 2 * 2, 2))
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    F.cross_entropy(model(np.ones((2, 1, 4, 4), np.float32)), [0, 1]).backward()
    optimizer.step()
    return model, optimizer


def run_meta_text():
    """The metadata `RunFolder` writes for a LeNet-5 run (config, data, loop state, AdamW state),
    with the SHA-256s of `run_meta_tensors`."""
    manual_seed(0)
    config = asdict(experiment.RunConfig(model="lenet5", epochs=2, batch_size=4))
    model = experiment.build_model(experiment.RunConfig(**config))
    optimizer = experiment.make_optimizer(experiment.RunConfig(**config), model.parameters())
    tensors = run_meta_tensors()
    state = {"state": {"0": {"step": 3}, "1": {"step": 3}},
             "param_groups": [{k: v for k, v in group.items() if k != "params"} | {"params": list(range(10))}
                              for group in optimizer.param_groups]}
    meta = {"config": config,
            "data": {split: {"files": [f"/data/{split}-images", f"/data/{split}-labels"], "sha256": "ab" * 32}
                     for split in ("train", "test")},
            "epoch": 1, "batch": 0, "partial": {"loss": 0.0, "correct": 0, "count": 0, "seconds": 0.0},
            "history": [{"epoch": 1, "train_loss": 0.5, "test_accuracy": 0.8}],
            "schedule": experiment.make_schedule(experiment.RunConfig(**config), optimizer, 2).state_dict(),
            "rng": convnet.random.get_state(),
            "optimizer": state,
            "sha256": {name: checkpoint._digest(tensor) for name, tensor in tensors.items()}}
    return json.dumps(meta, indent=1)


def checkpoint_seeds():
    model, optimizer = _trained_tiny()
    meta = {"config": {"model": "lenet5", "epochs": 1}, "epoch": 1, "history": [{"epoch": 1, "loss": 0.5}]}
    return {
        "seed-adam.safetensors": _checkpoint_bytes(model, optimizer, meta),
        "seed-model-only.safetensors": _checkpoint_bytes(model, None, {"epoch": 1}),
        "seed-legacy-adam.safetensors": _checkpoint_bytes(model, optimizer, meta, legacy=True),
    }


def run_meta_seeds():
    text = run_meta_text()
    legacy = json.loads(text)
    del legacy["sha256"]
    return {"seed-lenet5-adamw.json": text.encode(), "seed-lenet5-no-digests.json": json.dumps(legacy).encode()}


def download_seeds():
    return {"seed-idx.gz": _idx(np.array([1, 2, 3], np.uint8), compressed=True),
            "seed-empty.gz": gzip.compress(b"", mtime=0)}


def pth_seeds():
    """What torch.save writes for a state_dict (made with PyTorch, the format's only writer): float32
    weights, a 0-d int64 count, a bfloat16 tensor and a transposed view sharing its storage."""
    import torch
    torch.manual_seed(0)
    weight = torch.randn(2, 3)
    files = {}
    for name, state in {"seed-conv-bn.pth": {"0.weight": torch.randn(2, 1, 2, 2), "1.running_var": torch.ones(2),
                                             "1.num_batches_tracked": torch.tensor(3)},
                        "seed-bf16-shared.pth": {"w": weight.bfloat16(), "a": weight, "a_t": weight.t()}}.items():
        out = io.BytesIO()
        torch.save(state, out)
        files[name] = out.getvalue()
    return files


def onnx_seeds():
    """convnet's own export of a tiny CNN (Conv, BatchNormalization, Relu, MaxPool, Flatten, Gemm)
    and of one with a residual Add."""
    from convnet.onnx import export
    manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(2 * 2 * 2, 3))
    residual = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BasicBlock(2, 2), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(2, 2))
    files = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, model in (("seed-conv-bn-pool.onnx", plain), ("seed-residual.onnx", residual)):
            export(model, Path(folder) / name, (1, 1, 4, 4), opset=17)
            files[name] = (Path(folder) / name).read_bytes()
    return files


SEEDS = {"idx": idx_seeds, "mnist": mnist_seeds, "image": image_seeds, "checkpoint": checkpoint_seeds,
         "run_meta": run_meta_seeds, "download": download_seeds, "pth": pth_seeds, "onnx": onnx_seeds}


def main():
    total = 0
    for target, make in SEEDS.items():
        folder = CORPUS / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in make().items():
            (folder / name).write_bytes(data)
            total += len(data)
            print(f"{folder / name}: {len(data)} bytes")
    print(f"{total} bytes of seeds")


if __name__ == "__main__":
    main()
