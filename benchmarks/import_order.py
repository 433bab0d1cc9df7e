"""What importing NumPy before convnet costs: training steps with OpenBLAS's idle threads asleep
(convnet imported first, its `quiet_idle_threads` default in force) against spinning (NumPy
first, too early for it).

    python benchmarks/import_order.py [--rounds 7]

One process per import order, each training the reference CNN + BN and ResNet-8 on random
batches of 128 with AdamW; they take turns, the order alternating from round to round, and each
reports the median of its steps. Printed: the median over the rounds of NumPy-first's step time
divided by convnet-first's, with the range.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time

STEPS = {"reference_cnn": 40, "resnet8": 8}  # steps per turn: a second or two each

WORKER = r'''
import sys
if sys.argv[1] == "numpy-first":
    import numpy
import convnet
import json, statistics, time
import numpy as np
from convnet import functional as F, models, optim
from convnet.process import retain_freed_memory

retain_freed_memory()  # as the convnet command does
rng = np.random.default_rng(0)
steps = {}
for name in ("reference_cnn", "resnet8"):
    model = models.build(name)
    optimizer = optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    images = convnet.tensor(rng.standard_normal((128, 1, 28, 28), dtype=np.float32))
    labels = rng.integers(0, 10, 128)

    def step(model=model, optimizer=optimizer, images=images, labels=labels):
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels, label_smoothing=0.1).backward()
        optimizer.step()
    for _ in range(3):  # compiling, first touches
        step()
    steps[name] = step
print("ready", flush=True)
for line in sys.stdin:
    name, count = line.split()
    times = []
    for _ in range(int(count)):
        start = time.perf_counter()
        steps[name]()
        times.append(time.perf_counter() - start)
    print(json.dumps(statistics.median(times)), flush=True)
'''


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    rounds = parser.parse_args().rounds
    orders = ("convnet-first", "numpy-first")
    workers = {order: subprocess.Popen([sys.executable, "-W", "ignore", "-c", WORKER, order], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True) for order in orders}
    for worker in workers.values():
        assert worker.stdout.readline().strip() == "ready"
    seconds = {(order, name): [] for order in orders for name in STEPS}
    for turn in range(rounds):
        for name, count in STEPS.items():
            for order in (orders if turn % 2 == 0 else orders[::-1]):
                time.sleep(0.3)  # the other process's threads go to sleep
                workers[order].stdin.write(f"{name} {count}\n")
                workers[order].stdin.flush()
                seconds[(order, name)].append(json.loads(workers[order].stdout.readline()))
    for worker in workers.values():
        worker.stdin.close()
        worker.wait()
    for name in STEPS:
        ratios = [late / early for early, late in zip(seconds[("convnet-first", name)], seconds[("numpy-first", name)])]
        print(f"{name}: NumPy first / convnet first, step time {statistics.median(ratios):.2f}x "
              f"(rounds {min(ratios):.2f}-{max(ratios):.2f}); ms per step: convnet first "
              f"{statistics.median(seconds[('convnet-first', name)]) * 1e3:.1f}, NumPy first "
              f"{statistics.median(seconds[('numpy-first', name)]) * 1e3:.1f}")


if __name__ == "__main__":
    main()
