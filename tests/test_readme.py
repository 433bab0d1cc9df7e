"""The README stays a short front door whose examples run as written: what `make train` prints,
the commands it shows for the run folder that `make train` made, and the fault table (in
docs/robustness.md) naming tests that exist. Its ```python blocks run in tests/test_docs.py, with
every other page's."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import write_tiny_fashion
from test_docs import split_fences

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NUMBER = r"\d+(?:[.,]\d+)*"


def test_the_readme_is_at_most_200_lines():
    assert len(README.read_text().splitlines()) <= 200


def test_the_fault_table_names_tests_that_exist():
    table = (ROOT / "docs" / "robustness.md").read_text().split("## When things go wrong")[1].split("\n## ")[0]
    named = set(re.findall(r"`(?:\w+\.py::)?(test_\w+)`", table))
    defined = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        defined |= set(re.findall(r"^def (test_\w+)", path.read_text(), flags=re.M))
    assert len(named) >= 15 and named <= defined, sorted(named - defined)


def _block(language, containing):
    blocks = [text for kind, _, text in split_fences(README.read_text())[1] if kind == language and containing in text]
    assert len(blocks) == 1, f"the README should have one ```{language} block with {containing!r}"
    return blocks[0]


def _shape(line):
    """A pattern for ``line`` with every number free: the README shows one run's figures."""
    return "".join(NUMBER if index % 2 else re.escape(part)
                   for index, part in enumerate(re.split(f"({NUMBER})", line)))


@pytest.mark.slow
def test_make_train_prints_what_the_readme_shows_and_the_commands_after_it_run_as_written(tmp_path):
    """`make train`'s own command, on a tiny Fashion-MNIST for three epochs: its output has the
    README's lines (figures aside) in the README's order, and the README's block for the run
    folder finds that folder and runs (but `convnet watch`, which serves until stopped: see
    test_watch.py)."""
    command = os.path.join(os.path.dirname(sys.executable), "convnet")
    if not os.access(command, os.X_OK):
        pytest.skip(f"the convnet command is not installed beside {sys.executable}")
    recipe = re.search(r"^train:.*\n\t(.+)$", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    recipe = recipe.replace("$(VENV)/bin/convnet", "convnet").replace("$$", "$")
    data = tmp_path / "data"
    data.mkdir()
    write_tiny_fashion(data)
    activate = tmp_path / ".venv" / "bin" / "activate"  # the README's `. .venv/bin/activate`, for this Python
    activate.parent.mkdir(parents=True)
    activate.write_text(f'PATH="{os.path.dirname(command)}:$PATH"\n')
    environment = {**os.environ, "MPLBACKEND": "Agg"}

    def run(script):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=environment,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{script}\n{done.stdout}\n{done.stderr}"
        return done.stdout.splitlines()

    printed = run(f". .venv/bin/activate\n{recipe} --data {data} --epochs 3 --batch-size 64")
    remaining = iter(printed)
    for line in _block("text", "test accuracy").splitlines():
        if line.strip() != "...":
            pattern = re.compile(_shape(line))
            assert any(pattern.fullmatch(out) for out in remaining), f"no line like {line!r} in order in:\n" + \
                "\n".join(printed)

    folder_block = _block("sh", "runs/reference-")
    script = "\n".join(line for line in folder_block.splitlines() if not line.startswith("convnet watch"))
    run(script)
    assert len(list(tmp_path.glob("runs/reference-*"))) == 1
    assert (tmp_path / "show" / "index.html").is_file()
