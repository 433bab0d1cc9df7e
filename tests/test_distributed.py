"""Data-parallel training over MPI equals one process: the same global batches split into shares,
gradients summed by Allreduce. The one-rank path runs under plain pytest; the two-rank tests start
``mpirun -n 2`` (Open MPI, which `make test` installs) and compare with a single process."""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from convnet import Tensor, checkpoint
from convnet import functional as F
from convnet.distributed import Group

ROOT = Path(__file__).resolve().parent.parent
MPIRUN = shutil.which("mpirun")
try:
    import mpi4py  # noqa: F401
except ImportError:
    mpi4py = None
MPI_MISSING = "needs Open MPI (apt-get install openmpi-bin) and mpi4py (pip install -e '.[test]')"
requires_mpi = pytest.mark.skipif((MPIRUN is None or mpi4py is None) and not os.environ.get("CI"), reason=MPI_MISSING)


def mpirun(ranks, *argv, timeout=120):
    """Run ``python argv`` on ``ranks`` ranks of one job; (exit status, stdout, stderr, seconds)."""
    start = time.perf_counter()
    done = subprocess.run([MPIRUN, "--allow-run-as-root", "--oversubscribe", "-n", str(ranks), sys.executable,
                           *map(str, argv)], capture_output=True, text=True, timeout=timeout)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - start


def convnet(*argv):
    return ["-m", "convnet", *map(str, argv)]


def train(data, out, *options, model="lenet5", epochs=2):
    return convnet("train", "--model", model, "--data", data, "--epochs", epochs, "--batch-size", 30, "--out", out,
                   "--no-progress", *options)


def single_process(data, out, *options, **keywords):
    done = subprocess.run([sys.executable, *train(data, out, *options, **keywords)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done


def weights(run_dir):
    return checkpoint.load(run_dir)[0]


def assert_close_weights(ours, theirs):
    for key, value in theirs.items():
        scale = max(float(np.abs(value).max()), 1e-12)
        assert float(np.abs(ours[key] - value).max()) <= 1e-5 * scale, key


class Ranks(Group):
    def __init__(self, rank, size):
        self.rank, self.size = rank, size


@pytest.mark.parametrize("size", [1, 2, 3, 7])
@pytest.mark.parametrize("count", [1, 29, 30, 128])
def test_the_shares_of_a_batch_cover_it_once_in_order_and_differ_by_at_most_one(size, count):
    shares = [Ranks(rank, size).share(count) for rank in range(size)]
    assert [i for share in shares for i in range(count)[share]] == list(range(count))
    lengths = [len(range(count)[share]) for share in shares]
    assert max(lengths) - min(lengths) <= 1


@pytest.mark.slow
def test_distributed_without_mpirun_trains_as_one_process_and_says_so(tiny_fashion, tmp_path):
    done = single_process(tiny_fashion, tmp_path / "run", "--distributed", epochs=1)
    assert done.stdout.startswith("--distributed: not started by mpirun")
    single_process(tiny_fashion, tmp_path / "one", epochs=1)
    assert_close_weights(weights(tmp_path / "run"), weights(tmp_path / "one"))


@pytest.mark.slow
def test_ranks_sharing_a_host_share_its_cores_unless_told_otherwise():
    script = "import os, convnet; print(os.environ['OMP_NUM_THREADS'], os.environ['OPENBLAS_NUM_THREADS'])"
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    for local_ranks, told, expected in [("2", None, max(1, len(os.sched_getaffinity(0)) // 2)), ("64", None, 1),
                                        ("2", "3", 3)]:
        extra = {"OMPI_COMM_WORLD_LOCAL_SIZE": local_ranks, **({"OMP_NUM_THREADS": told} if told else {})}
        done = subprocess.run([sys.executable, "-c", script], env={**environment, **extra}, capture_output=True,
                              text=True, check=True)
        omp, blas = done.stdout.split()
        assert int(omp) == expected and int(blas) == (expected if told is None else max(1, len(
            os.sched_getaffinity(0)) // 2))


RANK_WEIGHTS = textwrap.dedent("""
    import hashlib, sys
    from convnet import experiment
    from convnet.distributed import world
    group = world()
    config = experiment.RunConfig(model=sys.argv[1], data=sys.argv[2], epochs=2, batch_size=30, lr=float(sys.argv[4]),
                                  optimizer="sgd", sync_bn=sys.argv[6:] == ["--sync-bn"])
    run = experiment.start(config, sys.argv[3], progress=False, log=lambda *_: None, group=group)
    run.trainer.fit(int(sys.argv[5]))
    digest = hashlib.sha256(b"".join(v.tobytes() for v in run.trainer.model.state_dict().values())).hexdigest()
    print(f"rank {group.rank} weights {digest}")
""")


@pytest.mark.system
@requires_mpi
@pytest.mark.parametrize(("model", "options"), [("lenet5", ()), ("reference_cnn", ()),
                                                ("reference_cnn", ("--sync-bn",))], ids=["lenet5", "BN", "sync BN"])
def test_two_ranks_train_as_one_process_and_hold_identical_weights(tiny_fashion, tmp_path, model, options):
    """Without batch norm, or with --sync-bn, the weights equal one process's to float32 summation
    order; with per-rank statistics (DDP's default) only the ranks' equality holds. SGD: Adam
    divides by the gradients' running size, so a summation-order difference in a gradient that is
    nearly zero becomes a visible one in the weight (measured: 2e-4 of the scale after two epochs
    with AdamW and --sync-bn, 3e-7 with SGD; 0.06 to 0.4 without --sync-bn)."""
    script = tmp_path / "train.py"
    script.write_text(RANK_WEIGHTS)
    code, out, err, _ = mpirun(2, script, model, tiny_fashion, tmp_path / "two", 0.002, 2, *options)
    assert code == 0, err
    digests = sorted(line.split()[-1] for line in out.splitlines() if " weights " in line)
    assert len(digests) == 2 and digests[0] == digests[1]  # bitwise identical on both ranks
    single_process(tiny_fashion, tmp_path / "one", "--lr", 0.002, "--optimizer", "sgd", model=model)
    _, _, two = checkpoint.load(tmp_path / "two")
    _, _, one = checkpoint.load(tmp_path / "one")
    if model == "lenet5" or options:
        assert_close_weights(weights(tmp_path / "two"), weights(tmp_path / "one"))
        assert two["history"][-1]["test_accuracy"] == one["history"][-1]["test_accuracy"]
        assert two["history"][-1]["test_loss"] == pytest.approx(one["history"][-1]["test_loss"], rel=1e-5)
    assert [sorted(entry) for entry in two["history"]] == [sorted(entry) for entry in one["history"]]


@pytest.mark.system
@requires_mpi
def test_the_command_line_trains_on_two_ranks_and_a_run_resumes_on_one(tiny_fashion, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RANK_WEIGHTS)
    code, _, err, _ = mpirun(2, script, "lenet5", tiny_fashion, tmp_path / "resumed", 0.002, 1)  # epoch 1 of 2
    assert code == 0, err
    done = subprocess.run([sys.executable, *convnet("train", "--resume", tmp_path / "resumed", "--no-progress")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    code, out, err, _ = mpirun(2, *train(tiny_fashion, tmp_path / "cli", "--distributed", "--lr", 0.002, "--optimizer",
                                         "sgd"))
    assert code == 0, err
    assert out.count("training lenet5 on fashion-mnist") == 1 and "on 2 ranks" in out  # rank 0 alone speaks
    assert out.count("test accuracy:") == 1 and err == ""
    single_process(tiny_fashion, tmp_path / "one", "--lr", 0.002, "--optimizer", "sgd")
    for run in ("resumed", "cli"):
        assert_close_weights(weights(tmp_path / run), weights(tmp_path / "one"))


@pytest.mark.system
@requires_mpi
def test_two_ranks_freeze_the_whitening_bias_as_one_process_does(tiny_fashion, tmp_path):
    """Every rank whitens with the filters of the whole training set's patches, not of its share of
    a batch; frozen after the first epoch, the layer's bias has no gradient to sum: SGD's momentum
    would move it on if the ranks summed a zero one."""
    options = ("--lr", 0.002, "--optimizer", "sgd", "--whiten", "--whiten-bias-epochs", 1)
    code, _, err, _ = mpirun(2, *train(tiny_fashion, tmp_path / "two", "--distributed", *options))
    assert code == 0, err
    single_process(tiny_fashion, tmp_path / "one", *options)
    two, one = weights(tmp_path / "two"), weights(tmp_path / "one")
    np.testing.assert_array_equal(two["whiten.weight"], one["whiten.weight"])
    assert_close_weights(two, one)


@pytest.mark.system
@requires_mpi
def test_mpirun_without_distributed_is_refused_rather_than_training_two_copies(tiny_fashion, tmp_path):
    code, _, err, _ = mpirun(2, *train(tiny_fashion, tmp_path / "run"))
    assert code != 0 and "started by mpirun as one of 2 processes without --distributed" in err
    assert not (tmp_path / "run" / checkpoint.WEIGHTS).exists()


@pytest.mark.system
@requires_mpi
def test_ranks_started_differently_are_refused_naming_the_rank(tiny_fashion, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RANK_WEIGHTS.replace("lr=float(sys.argv[4])", "lr=float(sys.argv[4]) * (1 + group.rank)"))
    code, _, err, seconds = mpirun(2, script, "lenet5", tiny_fashion, tmp_path / "run", 0.002, 1)
    assert code != 0 and "rank 1 differs from rank 0 in the run's settings and convnet version" in err


@pytest.mark.system
@requires_mpi
def test_a_killed_rank_stops_the_job_within_seconds_and_the_checkpoint_stays(tiny_fashion, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(RANK_WEIGHTS.replace("run.trainer.fit(int(sys.argv[5]))", textwrap.dedent("""\
        import os, signal
        from convnet.train import Callback
        class KillRankOne(Callback):
            def on_batch_end(self, trainer, loss):
                if trainer.epoch == 1 and trainer.batch == 3 and group.rank == 1:
                    os.kill(os.getpid(), signal.SIGKILL)
        run.trainer.callbacks.append(KillRankOne())
        run.trainer.fit(int(sys.argv[5]))""")))
    code, _, _, seconds = mpirun(2, script, "lenet5", tiny_fashion, tmp_path / "run", 0.002, 2)
    assert code != 0 and seconds < 60
    _, _, meta = checkpoint.load(tmp_path / "run")  # intact: epoch 1's
    assert meta["epoch"] == 1 and meta["batch"] == 0
    done = subprocess.run([sys.executable, *convnet("train", "--resume", tmp_path / "run", "--no-progress")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


SIGKILL_AFTER = 5


@pytest.mark.system
@requires_mpi
@pytest.mark.parametrize("interruption", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_ctrl_c_or_sigterm_to_mpirun_stops_every_rank_after_the_same_batch_and_rank_0_saves(tiny_fashion, tmp_path,
                                                                                            interruption):
    # mpirun forwards the signal as SIGTERM and kills the ranks one second later unless told to wait
    # longer: too short for a loaded machine to finish the batch and save (docs/distributed.md)
    process = subprocess.Popen([MPIRUN, "--allow-run-as-root", "--oversubscribe", "--mca", "odls_base_sigkill_timeout",
                                str(SIGKILL_AFTER), "-n", "2", sys.executable,
                                *train(tiny_fashion, tmp_path / "run", "--distributed", epochs=1000)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    for line in process.stdout:
        if line.startswith("epoch 1/1000"):
            break
    process.send_signal(interruption)
    _, err = process.communicate(timeout=60)
    assert process.returncode != 0, err  # mpirun reports 1 for a job that a signal stopped
    assert err.count("interrupted (SIG") == 1 and "resume with: convnet train --resume" in err
    _, _, meta = checkpoint.load(tmp_path / "run")
    assert meta["epoch"] >= 1


class ThreadRanks:
    """Two threads as the ranks of a job: `sum` adds the ranks' arrays (a barrier, then each adds
    the others'), what MPI's Allreduce does between processes."""

    def __init__(self, size):
        self.size, self.barrier, self.slots = size, threading.Barrier(size), [None] * size

    def sum_for(self, rank):
        def sum_across(array):
            self.slots[rank] = array.copy()
            self.barrier.wait()
            array[...] = np.sum(self.slots, axis=0)
            self.barrier.wait()
        return sum_across


@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (7, 4)], ids=["2d", "1d"])
def test_synchronised_batch_norm_on_shares_is_batch_norm_on_the_whole_batch(shape):
    """Each share normalised by the whole batch's statistics: outputs, input gradients, running
    statistics and the summed weight and bias gradients equal one batch norm over everything."""
    rng = np.random.default_rng(0)
    x, grad = rng.standard_normal(shape), rng.standard_normal(shape)
    weight, bias = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])

    def run(images, gradient, sum_across):
        inputs = [Tensor(images, requires_grad=True), Tensor(weight.copy(), requires_grad=True),
                  Tensor(bias.copy(), requires_grad=True)]
        running = [np.zeros(shape[1]), np.ones(shape[1])]
        out = F.batch_norm(inputs[0], *running, inputs[1], inputs[2], training=True, sum_across=sum_across)
        out.backward(gradient)
        return out.numpy(), [t.grad.numpy() for t in inputs], running

    expected = run(x, grad, None)
    ranks, shares, results = ThreadRanks(2), [slice(0, 4), slice(4, None)], [None, None]

    def rank(index):
        results[index] = run(x[shares[index]], grad[shares[index]], ranks.sum_for(index))
    threads = [threading.Thread(target=rank, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    np.testing.assert_allclose(np.concatenate([results[0][0], results[1][0]]), expected[0], atol=1e-12)
    np.testing.assert_allclose(np.concatenate([results[0][1][0], results[1][1][0]]), expected[1][0], atol=1e-12)
    for parameter in (1, 2):
        np.testing.assert_allclose(results[0][1][parameter] + results[1][1][parameter], expected[1][parameter],
                                   atol=1e-12)
    for rank_result in results:
        for statistic, expected_statistic in zip(rank_result[2], expected[2]):
            np.testing.assert_allclose(statistic, expected_statistic, atol=1e-12)


@pytest.mark.system
@requires_mpi
def test_two_hosts_over_tcp_train_as_one_process(tiny_fashion, tmp_path):
    """Two network namespaces joined by a veth pair limited to 1 Gbit/s, Open MPI over TCP between
    them (benchmarks/two_hosts.py): one short run equals the single-process one."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from two_hosts import NamespacesUnavailable, two_hosts
    with contextlib.ExitStack() as stack:
        try:
            mpirun_prefix = stack.enter_context(two_hosts("1gbit"))
        except NamespacesUnavailable as error:
            if os.environ.get("CI") and os.geteuid() == 0:  # CI runs as root: there it must run
                raise
            pytest.skip(str(error))
        done = subprocess.run([*mpirun_prefix, sys.executable, *train(tiny_fashion, tmp_path / "two-hosts",
                                                                      "--distributed", "--optimizer", "sgd")],
                              capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on 2 ranks" in done.stdout
    single_process(tiny_fashion, tmp_path / "one", "--optimizer", "sgd")
    assert_close_weights(weights(tmp_path / "two-hosts"), weights(tmp_path / "one"))


@pytest.mark.parametrize("size", [2, 3])
def test_a_rank_reads_only_its_share_and_its_augmented_images_are_the_whole_batchs(size):
    """`RankShare` reads the rank's rows alone (the others stay zeros) and the augmentations, drawn
    for the whole batch, give the share the images one process gets."""
    from convnet.data import transforms
    from convnet.data.loader import ArrayDataset
    from convnet.experiment.sources import RankShare
    rng = np.random.default_rng(0)
    dataset = ArrayDataset(rng.integers(0, 256, (40, 3, 8, 8), dtype=np.uint8), rng.integers(0, 4, 40))
    augment = transforms.Compose(transforms.RandomCrop(8, padding=1), transforms.RandomHorizontalFlip(),
                                 transforms.Normalize([0.5] * 3, [0.25] * 3), transforms.RandomErasing(p=0.5))
    index = rng.permutation(40)[:29]
    whole, labels = dataset.batch(index)
    expected = augment(whole, np.random.default_rng(7))
    for rank in range(size):
        share = Ranks(rank, size).share(len(index))
        images, share_labels = RankShare(dataset, Ranks(rank, size)).batch(index)
        np.testing.assert_array_equal(share_labels, labels)
        np.testing.assert_array_equal(images[share], whole[share])
        others = np.ones(len(index), dtype=bool)
        others[share] = False
        assert not images[others].any()  # never read
        np.testing.assert_array_equal(augment(images, np.random.default_rng(7))[share], expected[share])


DECODINGS_COUNTED = textwrap.dedent("""
    import os, sys, time
    from convnet.data import cache
    from convnet.cli import main
    passes = cache._run

    def counted(executor, workers, function, tasks, progress, description, chunks):
        # said by every rank that decodes; slowed, so that ranks not waiting for rank 0 both decode
        print(f"rank {os.environ['OMPI_COMM_WORLD_RANK']}: {description}", flush=True)
        time.sleep(1)
        return passes(executor, workers, function, tasks, progress, description, chunks)
    cache._run = counted
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.system
@requires_mpi
def test_two_ranks_on_an_image_folder_decode_it_once_and_train_as_one_process(tmp_path, monkeypatch):
    """Rank 0 decodes the colour folder into the cache while rank 1 waits, then rank 1 opens the
    cache without decoding; the two ranks' weights and figures are one process's."""
    from convnet.data import shapes
    shapes(tmp_path / "shapes", per_class=20, val_per_class=5, size=32)
    script = tmp_path / "counted.py"
    script.write_text(DECODINGS_COUNTED)
    options = ("--distributed", "--lr", 0.002, "--optimizer", "sgd", "--augment", "full")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "two-ranks-cache"))  # mpirun's ranks inherit it
    code, out, err, _ = mpirun(2, script, *train(tmp_path / "shapes", tmp_path / "two", *options)[2:])
    assert code == 0, err
    assert [line for line in out.splitlines() if line.startswith("rank ")] == [
        "rank 0: reading images", "rank 0: decoding images"]
    assert "image folder, 3 channels, 32x32, 4 classes, 80 training / 20 validation images" in out
    cached = sorted(path.suffix for path in (tmp_path / "two-ranks-cache" / "convnet" / "images").iterdir())
    assert cached == [".json", ".npy"]  # one cache, no temporary left
    done = subprocess.run([sys.executable, *train(tmp_path / "shapes", tmp_path / "one", *options[1:])],
                          capture_output=True, text=True, env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "own")))
    assert done.returncode == 0, done.stderr
    assert_close_weights(weights(tmp_path / "two"), weights(tmp_path / "one"))
    _, _, two = checkpoint.load(tmp_path / "two")
    _, _, one = checkpoint.load(tmp_path / "one")
    assert two["history"][-1]["test_accuracy"] == one["history"][-1]["test_accuracy"]
    assert two["history"][-1]["test_loss"] == pytest.approx(one["history"][-1]["test_loss"], rel=1e-5)


@pytest.mark.system
@requires_mpi
def test_an_image_folder_rank_0_cannot_open_stops_the_job_and_no_other_rank_decodes_it(tmp_path, monkeypatch):
    from convnet.data import shapes
    shapes(tmp_path / "shapes", per_class=5, val_per_class=2, size=32)
    (tmp_path / "shapes" / "train" / "circle" / "00003.png").write_bytes(b"not a png")
    script = tmp_path / "counted.py"
    script.write_text(DECODINGS_COUNTED)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, out, err, seconds = mpirun(2, script, *train(tmp_path / "shapes", tmp_path / "run", "--distributed")[2:])
    assert code != 0 and seconds < 60
    assert "rank 0: error: 1 image cannot be read: " in err and "00003.png: not a readable image" in err
    assert [line for line in out.splitlines() if line.startswith("rank ")] == [
        "rank 0: reading images", "rank 0: decoding images"]
    assert not (tmp_path / "run").exists()
