"""convnet.onnx.load against the ONNX package's own backend node cases for the CNN operators
(benchmarks/onnx_backend.py selects and runs them): each case's model, inputs and expected outputs,
computed by ONNX's reference implementation, with the tolerances the case allows. A case either
passes or is refused at load naming the node, its operator and the reason; never a wrong answer.
"""

import copy
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="the onnx package is not installed (pip install -e '.[test]')")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from onnx_backend import CNN_OPERATORS, Outcome, cnn_cases, run_case, table  # noqa: E402

from convnet.onnx import OnnxError, load  # noqa: E402

# What is still refused, and why: 1-D and 3-D transposed convolutions, and Dropout whose
# training_mode is a graph input (convnet drops when the model is in train() mode).
EXPECTED_REFUSALS = {
    "test_convtranspose_1d": "ConvTranspose of 1-D kernels: convnet works on 2-D images",
    "test_convtranspose_3d": "ConvTranspose of 3-D kernels: convnet works on 2-D images",
    **{name: "Dropout training_mode from the graph's value 't': convnet's dropout follows the model's train() and "
             "eval()"
       for name in ("test_training_dropout_default", "test_training_dropout_default_mask", "test_training_dropout",
                    "test_training_dropout_mask", "test_training_dropout_zero_ratio",
                    "test_training_dropout_zero_ratio_mask")},
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("backend")
    return [run_case(operator, case, folder) for operator, case in cnn_cases()]


def test_the_selection_is_the_issues_137_cases_and_their_opset_18_expansions():
    names = Counter(operator for operator, _ in cnn_cases())
    assert set(names) == set(CNN_OPERATORS)
    cases = [case.name for _, case in cnn_cases()]
    assert len(cases) == len(set(cases)) == 145
    # The issue's 137 leave out the 8 cases that expand Softmax and Relu as ONNX 18 does.
    assert sum(not name.endswith("_expanded_ver18") for name in cases) == 137


@pytest.mark.slow
def test_every_case_passes_or_is_refused_naming_the_node_operator_and_reason(outcomes):
    wrong = [outcome for outcome in outcomes if outcome.verdict == "wrong"]
    assert not wrong, "\n".join(f"{outcome.case}: {outcome.detail}" for outcome in wrong)
    refused = {outcome.case: outcome.detail for outcome in outcomes if outcome.verdict == "refused"}
    assert refused == {name: f"cannot load 1 node: node 0 ({reason})" for name, reason in EXPECTED_REFUSALS.items()}
    of_the_issues_137 = [outcome for outcome in outcomes if not outcome.case.endswith("_expanded_ver18")]
    assert sum(outcome.verdict == "passed" for outcome in of_the_issues_137) == 129  # the issue asks >= 120
    print("\n" + table(outcomes))


def test_a_refusal_is_one_line_naming_every_node_with_its_operator(tmp_path):
    """Two 1-D transposed convolutions in one graph: both named, with their operator and reason."""
    helper = onnx.helper
    nodes = [helper.make_node("ConvTranspose", ["x", "w"], ["a"], name="up1"),
             helper.make_node("ConvTranspose", ["a", "w"], ["y"], name="up2")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 2, 5])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 9])],
                              [onnx.numpy_helper.from_array(np.ones((2, 2, 3), np.float32), "w")])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10), path)
    with pytest.raises(OnnxError) as error:
        load(path)
    message = str(error.value)
    assert "\n" not in message
    assert re.fullmatch(rf"{re.escape(str(path))}: cannot load 2 nodes: "
                        r"up1 \(ConvTranspose of 1-D kernels: convnet works on 2-D images\), "
                        r"up2 \(ConvTranspose of 1-D kernels: convnet works on 2-D images\)", message)


def test_a_wrong_answer_is_told_apart_from_a_pass(tmp_path):
    """The harness itself: a case whose expected output is altered comes out wrong, not passed."""
    operator, case = next((operator, case) for operator, case in cnn_cases() if case.name == "test_relu")
    assert run_case(operator, case, tmp_path) == Outcome("Relu", "test_relu", "passed")
    (inputs, (expected,)), = case.data_sets
    altered = copy.copy(case)
    altered.data_sets = [(inputs, [expected + 1e-3])]
    outcome = run_case(operator, altered, tmp_path)
    assert outcome.verdict == "wrong" and "Mismatched elements" in outcome.detail
