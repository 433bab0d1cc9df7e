"""ONNX's own backend test cases for the CNN operators, run through `convnet.onnx.load`.

    python benchmarks/onnx_backend.py [--failures]

The cases are the onnx package's node tests (``onnx.backend.test.case.node.collect_testcases``):
each a one-node model (or that model with its ONNX function expanded into primitive nodes, the
``*_expanded`` cases), its inputs, the outputs ONNX's reference computes and the tolerances it
allows. `CNN_OPERATORS` selects the issue's 137: every case of Conv, ConvTranspose, MaxPool,
AveragePool, BatchNormalization, Gemm, the activations a CNN uses (Relu, LeakyRelu, Sigmoid, Tanh,
HardSwish), Softmax, Flatten, Add, Dropout, Gelu and GlobalAveragePool, expanded forms included.

Each case ends one of three ways: ``passed`` (every output within the case's rtol and atol),
``refused`` (`load` raised `OnnxError` naming the node, its operator and the reason) or ``wrong``
(any other outcome: an output off, or another exception). Prints the table per operator and exits 1
if any case is wrong.
"""

import argparse
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import convnet  # noqa: F401  (before NumPy, as convnet asks)
import numpy as np

CNN_OPERATORS = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "BatchNormalization", "Gemm", "Relu",
                 "LeakyRelu", "Sigmoid", "Tanh", "HardSwish", "Softmax", "Flatten", "Add", "Dropout", "Gelu",
                 "GlobalAveragePool")


class Outcome(NamedTuple):
    operator: str
    case: str
    verdict: str  # passed, refused or wrong
    detail: str = ""


def cnn_cases():
    """(operator, case) for every backend node case of `CNN_OPERATORS`, in the onnx package's order."""
    with warnings.catch_warnings():  # the cast cases' generators overflow on purpose
        warnings.simplefilter("ignore")
        from onnx.backend.test.case.node import collect_testcases
        cases = collect_testcases()
    operator_of = {case.name: case.model.graph.node[0].op_type for case in cases if len(case.model.graph.node) == 1}
    selected = []
    for case in cases:
        base = case.name.split("_expanded")[0]
        operator = operator_of.get(base)
        if operator in CNN_OPERATORS:
            selected.append((operator, case))
    return selected


def run_case(operator, case, folder):
    """The `Outcome` of loading ``case``'s model from ``folder`` and running each of its data sets."""
    import onnx

    import convnet
    from convnet.onnx import OnnxError, load

    path = Path(folder) / f"{case.name}.onnx"
    onnx.save(case.model, path)
    try:
        model = load(path)
    except OnnxError as error:
        return Outcome(operator, case.name, "refused", str(error).split(": ", 1)[1])
    try:
        for inputs, expected in case.data_sets:
            with convnet.no_grad():
                actual = model(*inputs)
            actual = actual if isinstance(actual, tuple) else (actual,)
            if len(actual) != len(expected):
                return Outcome(operator, case.name, "wrong", f"{len(actual)} outputs, expected {len(expected)}")
            for index, (ours, theirs) in enumerate(zip(actual, expected)):
                ours = ours.numpy()
                if ours.shape != theirs.shape or ours.dtype != theirs.dtype:
                    return Outcome(operator, case.name, "wrong", f"output {index}: {ours.dtype}{ours.shape}, "
                                                                 f"expected {theirs.dtype}{theirs.shape}")
                np.testing.assert_allclose(ours, theirs, rtol=case.rtol, atol=case.atol)
    except Exception as error:  # noqa: BLE001  (any failure of a loaded model is a wrong answer here)
        return Outcome(operator, case.name, "wrong", f"{type(error).__name__}: {' '.join(str(error).split())[:300]}")
    return Outcome(operator, case.name, "passed")


def run_all(folder):
    return [run_case(operator, case, folder) for operator, case in cnn_cases()]


def table(outcomes):
    """Markdown rows: operator, cases, passed, refused, wrong; then the totals."""
    counts = {operator: Counter() for operator in CNN_OPERATORS}
    for outcome in outcomes:
        counts[outcome.operator][outcome.verdict] += 1
    lines = ["| operator | cases | passed | refused | wrong |", "|---|---:|---:|---:|---:|"]
    total = Counter()
    for operator, count in counts.items():
        total.update(count)
        lines.append(f"| {operator} | {count.total()} | {count['passed']} | {count['refused']} | {count['wrong']} |")
    lines.append(f"| **all** | {total.total()} | {total['passed']} | {total['refused']} | {total['wrong']} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failures", action="store_true", help="also list every refused or wrong case, why")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        outcomes = run_all(folder)
    print(table(outcomes))
    if arguments.failures:
        for outcome in outcomes:
            if outcome.verdict != "passed":
                print(f"{outcome.verdict}: {outcome.case}: {outcome.detail}")
    return 1 if any(outcome.verdict == "wrong" for outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
