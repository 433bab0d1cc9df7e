"""The parallel kernels' results do not depend on how many threads run them, and the thread
pools' idle-wait defaults reach the environment without overriding the user's own."""

import json
import os
import subprocess
import sys

import pytest

from convnet import process

# Two training steps of each zoo model that runs every parallel kernel (Winograd, im2col/col2im,
# ReLU, both max pools, batch norm in training and evaluation), then an evaluation pass;
# prints a digest of every parameter and of the evaluation's logits.
TRAIN_AND_DIGEST = """
import hashlib, json, numpy as np, numba, convnet
from convnet import models, nn, functional as F, optim
rng = np.random.default_rng(0)
x = convnet.tensor(rng.standard_normal((24, 1, 28, 28), dtype=np.float32))
y = convnet.tensor(rng.integers(0, 10, 24))
digests = {"threads": numba.get_num_threads()}
for name, model in [("reference_cnn", models.reference_cnn()), ("resnet8", models.resnet8(widths=(32, 32, 32))),
                    ("overlapping pool", nn.Sequential(nn.Conv2d(1, 8, 3), nn.MaxPool2d(3, 2, 1), nn.Flatten(),
                                                       nn.Linear(8 * 13 * 13, 10)))]:
    convnet.manual_seed(0)
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    with convnet.no_grad():
        logits = model(x).data
    digest = hashlib.sha256(logits.tobytes())
    for p in model.parameters():
        digest.update(p.data.tobytes())
    digests[name] = digest.hexdigest()
print(json.dumps(digests))
"""


def run_with(environment, script):
    env = {**os.environ, **environment}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_training_is_bit_for_bit_the_same_on_one_thread_and_on_three_in_either_threading_layer():
    # workqueue is Numba's own layer, the one a machine without the system's OpenMP gets.
    runs = [run_with({"NUMBA_NUM_THREADS": str(n), "NUMBA_THREADING_LAYER": layer}, TRAIN_AND_DIGEST)
            for n, layer in [(1, "default"), (3, "default"), (3, "workqueue")]]
    assert [run.pop("threads") for run in runs] == [1, 3, 3]
    assert runs[0] == runs[1] == runs[2]


SHOW_ENVIRONMENT = ("import os, json, convnet; print(json.dumps({k: os.environ.get(k) for k in "
                    "('OMP_WAIT_POLICY', 'OPENBLAS_THREAD_TIMEOUT')}))")


@pytest.mark.parametrize("given, expected", [
    ({}, {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_WAIT_POLICY": "ACTIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}),
    ({"OPENBLAS_THREAD_TIMEOUT": "28"}, {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "28"}),
])
def test_import_sets_the_idle_wait_defaults_and_keeps_the_users_own(given, expected):
    environment = {k: v for k, v in os.environ.items() if k not in process.IDLE_THREAD_WAIT}
    result = subprocess.run([sys.executable, "-c", SHOW_ENVIRONMENT], capture_output=True, text=True, check=True,
                            env={**environment, **given})
    assert json.loads(result.stdout) == expected


def test_withdrawing_the_defaults_leaves_the_environment_as_it_was(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "28")
    monkeypatch.setattr(process, "applied_thread_defaults", {})
    process.quiet_idle_threads()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert process.applied_thread_defaults == {"OMP_WAIT_POLICY": "PASSIVE"}
    process.withdraw_thread_defaults()
    assert "OMP_WAIT_POLICY" not in os.environ and os.environ["OPENBLAS_THREAD_TIMEOUT"] == "28"


@pytest.mark.parametrize("imports, given, warned", [
    ("import numpy, convnet", {"OPENBLAS_NUM_THREADS": "2"}, True),
    ("import convnet, numpy", {"OPENBLAS_NUM_THREADS": "2"}, False),
    ("import numpy, convnet", {"OPENBLAS_NUM_THREADS": "2", "OPENBLAS_THREAD_TIMEOUT": "4"}, False),
    ("import numpy, convnet", {"OPENBLAS_NUM_THREADS": "1"}, False),  # one thread: nothing spins
])
def test_importing_convnet_after_numpy_warns_that_blas_threads_will_spin(imports, given, warned):
    environment = {k: v for k, v in os.environ.items()
                   if k not in (*process.IDLE_THREAD_WAIT, *process.THREAD_COUNT_VARIABLES)}
    result = subprocess.run([sys.executable, "-W", "default", "-c", imports], capture_output=True, text=True,
                            check=True, env={**environment, **given})
    warnings = [line for line in result.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warnings) == warned
    if warned:
        assert "import convnet before NumPy, or set OPENBLAS_THREAD_TIMEOUT=4" in warnings[0]


def test_blas_threads_are_counted_where_there_is_no_affinity_call(monkeypatch):
    for name in process.THREAD_COUNT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)  # as on macOS and Windows
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert process._blas_threads() == process.available_cores() == 6
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert process._blas_threads() == 3
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert process._blas_threads() == 2
