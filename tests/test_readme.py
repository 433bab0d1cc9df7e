"""The README's Python examples (```python blocks; ```py blocks are too long to run) run as written,
and the tests its fault table names exist."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    for block in blocks:
        namespace = {}
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["torch_keys"][:3] == ["0.weight", "0.bias", "3.weight"]


def test_the_fault_table_names_tests_that_exist():
    table = README.read_text().split("### When things go wrong")[1].split("\n## ")[0]
    named = set(re.findall(r"`(?:\w+\.py::)?(test_\w+)`", table))
    defined = set()
    for path in README.parent.joinpath("tests").glob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    assert len(named) >= 15 and named <= defined, sorted(named - defined)
