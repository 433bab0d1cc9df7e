"""load_pth reads what torch.save writes, bit for bit (torch, loading the same file, is the oracle),
and needs no torch to do it. A file that names anything but tensors is refused before any of it
runs; one that lies about its sizes is refused before memory is given to them; each in one line
that starts with the file's path."""

import io
import math
import os
import pickle
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile
from collections import OrderedDict

import numpy as np
import pytest
from conftest import requires_torch, torch
from hypothesis import given, settings
from hypothesis import strategies as st

import convnet
from convnet import nn
from convnet.pth import PthError, load_pth

DTYPE_NAMES = ["float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]


def awkward(shape, dtype):
    """A tensor whose values expose a wrong conversion or a misplaced element: distinct random
    values and, for floats, NaN, both infinities, -0.0, a subnormal and the largest finite value;
    for integers, both ends of the range."""
    generator = torch.Generator().manual_seed(0)
    count = math.prod(shape)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=generator).bool()
    if dtype.is_floating_point:
        info = torch.finfo(dtype)
        values = torch.randn(count, generator=generator, dtype=torch.float64) * 1000
        specials = torch.tensor([math.nan, math.inf, -math.inf, -0.0, info.tiny / 4, info.max], dtype=torch.float64)
        values[:len(specials)] = specials[:count]
    else:
        info = torch.iinfo(dtype)
        values = torch.randint(info.min, info.max, (count,), generator=generator, dtype=torch.int64)
        values[:2] = torch.tensor([info.min, info.max])[:count]
    return values.to(dtype)[torch.randperm(count, generator=generator)].reshape(shape)


def as_numpy(tensor):
    """torch's own NumPy copy of ``tensor``; bfloat16, which NumPy lacks, widened by torch to float32."""
    tensor = tensor.detach()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def assert_bit_exact(ours, expected, key=""):
    assert (ours.dtype, ours.shape) == (expected.dtype, expected.shape), key
    assert ours.tobytes() == expected.tobytes(), key  # NaN payloads and signed zeros included


def check_against_torch(path):
    """load_pth(path) next to torch.load(path): same keys in the same order, same arrays bit for bit."""
    ours, theirs = load_pth(path), torch.load(path, weights_only=True)
    assert list(ours) == list(theirs)
    for key, tensor in theirs.items():
        assert_bit_exact(ours[key], as_numpy(tensor), key)
    return ours


def refused(path):
    """load_pth's message refusing ``path``, checked to be one line starting with the path, and the
    most memory Python allocated meanwhile (NumPy's arrays included)."""
    tracemalloc.start()
    try:
        with pytest.raises(PthError) as caught:
            load_pth(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message, peak


# Files forged as torch.save would write them, with whatever the test needs inside.
class StorageRef:
    """A storage as torch.save's pickle refers to it: ('storage', torch.<type>Storage, key, location, numel)."""

    def __init__(self, storage_type, key, numel):
        self.storage_type, self.key, self.numel = storage_type, key, numel


class ForgedTensor:
    """Pickles as torch.save pickles a tensor, with whatever view arguments it is given."""

    def __init__(self, storage, offset, shape, stride, *metadata):
        self.arguments = (storage, offset, shape, stride, False, OrderedDict(), *metadata)

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.arguments


class _ForgingPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, StorageRef):
            return "storage", obj.storage_type, obj.key, "cpu", obj.numel
        return None


def forge(obj):
    buffer = io.BytesIO()
    _ForgingPickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_pth(path, pickled, storages, byteorder=b"little", compression=zipfile.ZIP_STORED):
    """A zip laid out as torch.save lays it out, holding the pickle bytes ``pickled`` and ``storages``."""
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr("archive/data.pkl", pickled)
        archive.writestr("archive/byteorder", byteorder)
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data)
        archive.writestr("archive/version", "3\n")
    return path


def claim_size(path, name, size):
    """Rewrite the zip directory's entry for member ``name`` to claim ``size`` bytes (stored: both sizes)."""
    data, entry = bytearray(path.read_bytes()), b"PK\x01\x02"
    start = data.index(entry)
    while data[start + 46:start + 46 + int.from_bytes(data[start + 28:start + 30], "little")] != name.encode():
        start = data.index(entry, start + 1)
    data[start + 20:start + 28] = size.to_bytes(4, "little") * 2
    path.write_bytes(bytes(data))
    return path


STORAGE_TYPES = ({name: getattr(torch, storage) for name, storage in [
    ("float32", "FloatStorage"), ("float64", "DoubleStorage"), ("float16", "HalfStorage"),
    ("bfloat16", "BFloat16Storage"), ("int64", "LongStorage"), ("int32", "IntStorage"), ("int16", "ShortStorage"),
    ("bool", "BoolStorage")]} if torch is not None else {})
STORAGE_VALUES = np.arange(24, dtype=np.float32) * 1.5 - 7  # the forged files' storage '0'


def forged_view(path, offset, shape, stride, numel=24):
    """A file whose tensor 't' views storage '0' (STORAGE_VALUES, declared as ``numel`` float32 elements)."""
    storage = StorageRef(torch.FloatStorage, "0", numel)
    return write_pth(path, forge({"t": ForgedTensor(storage, offset, shape, stride)}), {"0": STORAGE_VALUES.tobytes()})


# ---------------------------------------------------------------- files as torch.save writes them
@requires_torch
def test_every_dtype_bit_for_bit(tmp_path):
    state = OrderedDict()
    for name in DTYPE_NAMES:
        dtype = getattr(torch, name)
        state[f"{name}.matrix"] = awkward((3, 5), dtype)
        state[f"{name}.scalar"] = awkward((), dtype)  # 0-d, as num_batches_tracked
        state[f"{name}.empty"] = awkward((0, 4), dtype)
    # NaNs with a payload: a conversion through float arithmetic would lose it; bfloat16 -> float32 keeps it.
    state["float32.payload"] = torch.tensor([0x7FC00001, 0x7F800001, -0x3FFFFF], dtype=torch.int32).view(torch.float32)
    state["bfloat16.payload"] = torch.tensor([0x7FC1, 0x7F81, -0x7F], dtype=torch.int16).view(torch.bfloat16)
    torch.save(state, tmp_path / "all.pth")
    ours = check_against_torch(tmp_path / "all.pth")
    assert ours["bfloat16.matrix"].dtype == np.float32 and ours["int64.scalar"].shape == ()


@requires_torch
def test_a_trained_networks_state_dict_runs_in_convnet(tmp_path):
    """The state_dict of a torch Conv/BatchNorm/Linear net after two training steps (running
    statistics and num_batches_tracked moved) loads bit for bit, and a convnet twin given it
    computes what the torch net computes."""
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.Linear(4 * 4 * 4, 3))
    optimizer = torch.optim.SGD(theirs.parameters(), lr=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        theirs(torch.randn(5, 1, 8, 8)).square().mean().backward()
        optimizer.step()
    torch.save(theirs.state_dict(), tmp_path / "net.pth")
    state = check_against_torch(tmp_path / "net.pth")
    assert state["1.num_batches_tracked"] == 2
    ours = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 4 * 4, 3))
    ours.load_state_dict(state)
    ours.eval()
    theirs.eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(convnet.Tensor(x)).numpy(), expected, rtol=1e-5, atol=1e-6)


@requires_torch
def test_views_of_one_storage_come_back_as_views_of_one_array(tmp_path):
    base = awkward((4, 6), torch.float32)
    position_ids = torch.arange(6).expand(1, -1)  # stride 0 on a dimension of size 1, as in BERT's buffers
    state = OrderedDict(base=base, transposed=base.T, rows=base[1:3], strided=base[::2, 1::2], row=base[2],
                        element=base[1, 2], empty=base[4:], tied=base, position_ids=position_ids)
    torch.save(state, tmp_path / "views.pth")
    ours = check_against_torch(tmp_path / "views.pth")
    for key in ("transposed", "rows", "strided", "row", "element", "tied"):
        assert np.shares_memory(ours[key], ours["base"]), key  # as torch.load shares the storage
    assert ours["transposed"].flags.f_contiguous and ours["base"].flags.writeable


@requires_torch
@settings(max_examples=60)
@given(data=st.data())
def test_random_views_read_as_torch_reads_them(tmp_path_factory, data):
    """Slices with steps (empty ones too), permutations and selections of tensors of every dtype."""
    shape = data.draw(st.lists(st.integers(1, 5), min_size=1, max_size=3), label="shape")
    base = awkward(tuple(shape), getattr(torch, data.draw(st.sampled_from(DTYPE_NAMES), label="dtype")))
    index = []
    for size in shape:
        start = data.draw(st.integers(0, size - 1))
        index.append(slice(start, data.draw(st.integers(start, size)), data.draw(st.integers(1, 3))))
    view = base[tuple(index)].permute(*data.draw(st.permutations(range(len(shape))), label="order"))
    if data.draw(st.booleans(), label="select") and view.shape[0] > 0:
        view = view[data.draw(st.integers(0, view.shape[0] - 1))]
    path = tmp_path_factory.mktemp("views") / "view.pth"
    torch.save({"view": view}, path)
    check_against_torch(path)


@requires_torch
def test_parameters_saved_with_keep_vars(tmp_path):
    model = torch.nn.Linear(3, 2)
    torch.save(model.state_dict(keep_vars=True), tmp_path / "params.pth")  # pickles torch._utils._rebuild_parameter
    check_against_torch(tmp_path / "params.pth")


@requires_torch
def test_a_checkpoint_holding_one_state_dict_gives_it(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}, tmp_path / "run.pth")
    torch.save({"state_dict": model.state_dict()}, tmp_path / "wrapped.pth")
    for name in ("run.pth", "wrapped.pth"):
        ours = load_pth(tmp_path / name)
        assert list(ours) == list(model.state_dict())
        for key, tensor in model.state_dict().items():
            assert_bit_exact(ours[key], as_numpy(tensor), key)


@requires_torch
def test_big_endian_files_are_byteswapped(tmp_path):
    """A file written on a big-endian machine (byteorder 'big', every storage's bytes swapped) reads
    as the same numbers, as torch reads it."""
    state, storages = {}, {}
    for key, name in enumerate(["float32", "float64", "float16", "bfloat16", "int64", "int16", "bool"]):
        tensor = awkward((2, 3), getattr(torch, name))
        raw = tensor.view(torch.int16) if name == "bfloat16" else tensor
        storages[str(key)] = raw.numpy().astype(raw.numpy().dtype.newbyteorder(">")).tobytes()
        state[name] = ForgedTensor(StorageRef(STORAGE_TYPES[name], str(key), 6), 0, (2, 3), (3, 1))
    path = write_pth(tmp_path / "big.pth", forge(state), storages, byteorder=b"big")
    ours = check_against_torch(path)
    assert ours["float64"].dtype.isnative


@requires_torch
def test_loads_without_torch(tmp_path):
    """In a process where `import torch` fails, a file torch wrote reads to torch's arrays."""
    state = {"weight": awkward((3, 4), torch.float32).T, "count": torch.tensor(7), "half": awkward((5,), torch.float16),
             "brain": awkward((2, 3), torch.bfloat16), "mask": awkward((4,), torch.bool)}
    torch.save(state, tmp_path / "model.pth")
    np.savez(tmp_path / "expected.npz", **{key: as_numpy(tensor) for key, tensor in state.items()})
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None  # `import torch` now raises ImportError
        import numpy as np
        from convnet.pth import load_pth
        ours, expected = load_pth(sys.argv[1]), np.load(sys.argv[2])
        assert list(ours) == expected.files, list(ours)
        for key in expected.files:
            assert ours[key].dtype == expected[key].dtype and ours[key].shape == expected[key].shape, key
            assert ours[key].tobytes() == expected[key].tobytes(), key
        assert sys.modules["torch"] is None
        print("read", len(ours), "tensors")
    """)
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.pth"), str(tmp_path / "expected.npz")],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "read 5 tensors"


@requires_torch
def test_a_dimension_of_size_one_may_have_any_stride(tmp_path):
    """torch never steps along it, so any stride passes; one this large overflows NumPy's strides."""
    check_against_torch(forged_view(tmp_path / "ones.pth", 2, (3, 1, 2), (4, 2**63 - 1, 1)))


# ---------------------------------------------------------------- files that lie about sizes
SMALL = st.integers(-1, 7)
HUGE = st.sampled_from([2**31, 10**15, 2**63 - 1, 2**63, 2**64])
NUMBER = st.one_of(SMALL, SMALL, SMALL, HUGE)


@requires_torch
@settings(max_examples=150)
@given(offset=st.one_of(st.integers(-1, 30), HUGE), dims=st.lists(st.tuples(NUMBER, NUMBER), max_size=3))
def test_forged_views_are_read_as_torch_reads_them_or_refused(tmp_path_factory, offset, dims):
    """Any offset, shape and stride over a storage of 24 elements: if torch refuses the view, so
    does load_pth; what load_pth reads, torch reads identically; a view whose elements repeat
    is refused; and what torch reads but load_pth refuses is named as such."""
    shape, stride = tuple(size for size, _ in dims), tuple(step for _, step in dims)
    path = forged_view(tmp_path_factory.mktemp("forged") / "view.pth", offset, shape, stride)
    try:
        theirs = torch.load(path, weights_only=True)["t"].numpy()
    except Exception:  # noqa: BLE001  (torch refuses in many ways: RuntimeError, TypeError, OverflowError)
        theirs = None
    try:
        ours = load_pth(path)["t"]
    except PthError as error:
        ours, message = None, str(error)
    if ours is not None:
        assert theirs is not None
        assert_bit_exact(ours, theirs)
    elif theirs is not None:  # negative strides where torch never steps, or elements that may overlap
        assert "overlap" in message or "stride" in message, message
    if theirs is not None and 1 < theirs.size < 10_000:
        indices = offset + sum(np.indices(shape)[dim] * step for dim, step in enumerate(stride))
        if len(np.unique(indices)) < indices.size:
            assert ours is None and "overlap" in message, message


@pytest.mark.parametrize("offset, shape, stride, expected", [
    (20, (5,), (1,), ("its view (offset 20, shape (5,), stride (1,)) reaches element 24 of its storage '0', which holds "
                     "24 elements")),
    (0, (4, 6), (7, 1), "reaches element 26"),
    (-1, (2,), (1,), "expected its storage offset to be an int >= 0, got -1"),
    (0, (-3,), (1,), "expected its shape to be a tuple of at most 64 ints >= 0, got (-3,)"),
    (0, (2,), (-1,), "expected its stride to be a tuple of 1 ints >= 0 (one per dimension), got (-1,)"),
    (0, (2, 2), (1,), "expected its stride to be a tuple of 2 ints >= 0 (one per dimension), got (1,)"),
    (0, (2**64,), (1,), "expected its shape to be a tuple of at most 64 ints >= 0, got (18446744073709551616,)"),
    (0, (10**15,), (0,), "its elements overlap in storage (shape (1000000000000000,), stride (0,))"),
    (0, (10**8, 10**8), (1, 1), "its elements overlap"),
    (0, (2**40, 2**40, 0), (1, 1, 1), "is too large for NumPy"),
    (0, [2], (1,), "expected its shape to be a tuple of at most 64 ints >= 0, got [2]"),
    (0, (1,) * 65, (1,) * 65, "at most 64 ints"),
])
@requires_torch
def test_lying_views_are_refused_before_allocation(tmp_path, offset, shape, stride, expected):
    message, peak = refused(forged_view(tmp_path / "lying.pth", offset, shape, stride))
    assert "tensor 't': " in message and expected in message, message
    assert peak < 2**20


@requires_torch
def test_a_storage_claiming_more_or_fewer_bytes_than_its_member_is_refused(tmp_path):
    message, peak = refused(forged_view(tmp_path / "huge.pth", 0, (2,), (1,), numel=10**15))
    assert "storage '0' declares 1000000000000000 float32 elements (4000000000000000 bytes), but its member " \
           "'archive/data/0' holds 96 bytes" in message
    assert peak < 2**20
    message, _ = refused(forged_view(tmp_path / "short.pth", 0, (2,), (1,), numel=20))
    assert "declares 20 float32 elements (80 bytes), but its member 'archive/data/0' holds 96 bytes" in message


@requires_torch
def test_a_zip_directory_claiming_more_than_the_file_is_refused_before_reading(tmp_path):
    path = claim_size(forged_view(tmp_path / "bomb.pth", 0, (2,), (1,), numel=2**30 - 1), "archive/data/0", 2**32 - 4)
    message, peak = refused(path)
    assert f"member 'archive/data/0' claims 4294967292 bytes (4294967292 stored) in a file of " \
           f"{path.stat().st_size}" in message
    assert peak < 2**20


@requires_torch
def test_storages_claiming_more_than_the_file_in_all_are_refused_before_reading(tmp_path):
    """Each member's claim fits in the file, the two together do not: members that overlap."""
    real = np.zeros(100_000, np.float32).tobytes()

    def write(numel):  # numel >= 65536 pickles in 4 bytes, so the file's size does not depend on it
        state = {key: ForgedTensor(StorageRef(torch.FloatStorage, key, numel), 0, (2,), (1,)) for key in "01"}
        return write_pth(tmp_path / "overlap.pth", forge(state), {"0": real, "1": real})

    claim = write(100_000).stat().st_size * 6 // 10 // 4 * 4
    path = write(claim // 4)
    for key in "01":
        claim_size(path, f"archive/data/{key}", claim)
    message, peak = refused(path)
    assert f"its storages claim {2 * claim} bytes in all, more than the file's {path.stat().st_size}" in message
    assert peak < 2**20


@pytest.mark.parametrize("pickled, expected", [
    # LONG_BINPUT at index 2**31: CPython's unpickler would first grow its memo to 16 GiB.
    (b"\x80\x02]r\x00\x00\x00\x80.", "data.pkl puts memo index 2147483648 at opcode 2; expected at most 2"),
    # BINBYTES8 claiming a TiB: CPython's unpickler would allocate it before reading.
    (b"\x80\x02\x8e" + (2**40).to_bytes(8, "little") + b"abc.", "expected 1099511627776 bytes in a bytes8, but only 4"),
    (b"\x80\x02\x96" + (2**40).to_bytes(8, "little") + b"abc.", "expected 1099511627776 bytes in a bytearray8"),
    (b"\x80\x02}q\x00(X\x01\x00\x00\x00w", "data.pkl is not a readable pickle"),
    (b"\x80\x02\xff.", "data.pkl is not a readable pickle"),
])
def test_pickles_that_would_allocate_what_they_do_not_hold_are_refused(tmp_path, pickled, expected):
    message, peak = refused(write_pth(tmp_path / "counts.pth", pickled, {}))
    assert expected in message, message
    assert peak < 2**20


@requires_torch
def test_storage_contents_and_records_that_torch_never_writes_are_refused(tmp_path):
    def refusal(name, pickled, storages, **options):
        return refused(write_pth(tmp_path / name, pickled, storages, **options))[0]

    mask = {"m": ForgedTensor(StorageRef(torch.BoolStorage, "0", 2), 0, (2,), (1,))}
    assert "storage '0' holds bool bytes other than 0 and 1 (the largest is 2)" in refusal(
        "bool.pth", forge(mask), {"0": b"\x01\x02"})
    assert "archive/byteorder holds b'middle', expected b'little' or b'big'" in refusal(
        "order.pth", forge(mask), {"0": b"\x01\x00"}, byteorder=b"middle")
    assert "is compressed (method 8); torch.save stores its members uncompressed" in refusal(
        "deflated.pth", forge(mask), {"0": b"\x01\x00"}, compression=zipfile.ZIP_DEFLATED)
    twice = {"a": ForgedTensor(StorageRef(torch.FloatStorage, "0", 2), 0, (2,), (1,)),
             "b": ForgedTensor(StorageRef(torch.IntStorage, "0", 2), 0, (2,), (1,))}
    assert "tensor 'b': its storage '0' is declared as 2 int32 elements and elsewhere as 2 float32 elements" in refusal(
        "twice.pth", forge(twice), {"0": bytes(8)})
    assert "storage '1' has no member 'archive/data/1' in the zip archive" in refusal(
        "missing.pth", forge({"a": ForgedTensor(StorageRef(torch.FloatStorage, "1", 2), 0, (2,), (1,))}), {})
    assert "tensor 'a': expected its storage's size to be an int >= 0, got -2" in refusal(
        "negative.pth", forge({"a": ForgedTensor(StorageRef(torch.FloatStorage, "0", -2), 0, (2,), (1,))}), {})
    assert "data.pkl refers to 'cat' outside itself; expected a storage" in refusal(
        "persistent.pth", b"\x80\x02X\x03\x00\x00\x00catQ.", {})


@requires_torch
@pytest.mark.parametrize("make, expected", [
    (lambda: {"w": torch.ones(2), "step": 3}, "key 'step' holds 3, not a tensor (expected a state_dict"),
    (lambda: {"model": {"w": torch.ones(2)}, "ema": {"w": torch.ones(2)}, "epoch": 1},
     "got a dict with keys 'model', 'ema', 'epoch', 2 of them dicts of tensors: 'model', 'ema'"),
    (lambda: {"epoch": 1, "note": "none"}, "got a dict with keys 'epoch', 'note', 0 of them dicts of tensors"),
    (lambda: torch.ones(2), "expected a state_dict (a dict of tensors), got a tensor"),
    (lambda: [torch.ones(2)], "got a list of 1 items"),
    (lambda: {0: torch.ones(2)}, "expected a state_dict's keys to be strings, got 0"),
    (lambda: {"c": torch.ones(2, dtype=torch.complex64)}, ("holds a tensor of type torch.ComplexFloatStorage; "
                                                          "load_pth reads float64, float32")),
    (lambda: {"u": torch.ones(2, dtype=torch.uint16)}, ("torch._utils._rebuild_tensor_v3 (uint16, uint32, uint64, "
                                                       "float8 and other recent dtypes)")),
    (lambda: {"e": torch.zeros(3).expand(4, 3)}, ("tensor 'e': its elements overlap in storage (shape (4, 3), "
                                                 "stride (0, 1)), as an expanded view's do")),
    (lambda: {"n": torch._neg_view(torch.ones(2))}, ("tensor 'n': holds tensor metadata ({'neg': True}): a lazily "
                                                     "negated or conjugated view; save it as t.resolve_neg()")),
    (lambda: torch.nn.Linear(2, 2), ("holds a whole pickled model (torch.nn.modules.linear.Linear), not a state_dict: "
                                    "save model.state_dict() instead")),
])
def test_what_is_not_a_dict_of_readable_tensors_is_refused(tmp_path, make, expected):
    torch.save(make(), tmp_path / "odd.pth")
    message, _ = refused(tmp_path / "odd.pth")
    assert expected in message, message


@requires_torch
@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_and_legacy_files_are_refused_saying_how_to_save(tmp_path):
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), tmp_path / "scripted.pt")
    assert "is a TorchScript archive (torch.jit.save; it names __torch__.torch.nn.modules.linear.Linear), not a " \
           "state_dict: save model.state_dict() with torch.save instead" in refused(tmp_path / "scripted.pt")[0]
    torch.save({"w": torch.ones(2)}, tmp_path / "legacy.pth", _use_new_zipfile_serialization=False)
    assert "saved in torch's legacy format (_use_new_zipfile_serialization=False)" in refused(
        tmp_path / "legacy.pth")[0]


@pytest.mark.parametrize("content, expected", [
    (b"", "not a file written by torch.save (expected a zip archive, starting with PK\\x03\\x04; got b'')"),
    (b"\x93NUMPY\x01\x00", "not a file written by torch.save (expected a zip archive"),
    (b"PK\x03\x04" + bytes(40), "a damaged zip archive (BadZipFile: File is not a zip file)"),
])
def test_files_that_are_not_torch_zip_archives_are_refused(tmp_path, content, expected):
    (tmp_path / "odd.pth").write_bytes(content)
    assert expected in refused(tmp_path / "odd.pth")[0]


def test_a_zip_without_a_pickle_and_a_missing_file_are_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("weights/data.bin", b"1234")
    assert "expected one <name>/data.pkl in the zip archive, found 0" in refused(tmp_path / "other.zip")[0]
    assert "cannot be read (No such file or directory)" in refused(tmp_path / "absent.pth")[0]


# ---------------------------------------------------------------- files that would run code
class RunsCommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Evaluates(RunsCommand):
    def __reduce__(self):
        return eval, (f"open({str(self.marker)!r}, 'w').close()",)


class Executes(RunsCommand):
    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


class StartsProcess(RunsCommand):
    def __reduce__(self):
        return subprocess.Popen, (["touch", str(self.marker)],)


@requires_torch
@pytest.mark.parametrize("payload, global_name", [
    (RunsCommand, f"{os.system.__module__}.system"), (Evaluates, "builtins.eval"), (Executes, "builtins.exec"),
    (StartsProcess, "subprocess.Popen"),
])
@pytest.mark.parametrize("place", ["beside the tensors", "inside a checkpoint"])
def test_a_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path, payload, global_name, place):
    marker = tmp_path / "payload-ran"
    state = {"weight": torch.ones(2), "payload": payload(marker)}
    torch.save(state if place == "beside the tensors" else {"model": {"weight": torch.ones(2)}, "extra": [state]},
               tmp_path / "evil.pth")
    message, _ = refused(tmp_path / "evil.pth")
    assert f"refused: its pickle names {global_name}, which a state_dict never needs" in message, message
    assert "nothing in the file was run" in message
    assert not marker.exists()
    torch.load(tmp_path / "evil.pth", weights_only=False)  # the payload is live: plain unpickling runs it
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists()


def test_a_refused_global_is_never_imported(tmp_path, monkeypatch):
    """Refusing a name after importing its module would be too late: importing runs the module."""
    marker = tmp_path / "module-ran"
    (tmp_path / "pth_trap_module.py").write_text(f"open({str(marker)!r}, 'w').close()\ntrigger = print\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    pickled = b"\x80\x02cpth_trap_module\ntrigger\n)R."
    message, _ = refused(write_pth(tmp_path / "trap.pth", pickled, {}))
    assert "refused: its pickle names pth_trap_module.trigger" in message
    assert not marker.exists() and "pth_trap_module" not in sys.modules
    pickle.loads(pickled)  # the trap is live: plain unpickling imports the module
    assert marker.exists()
    del sys.modules["pth_trap_module"]
