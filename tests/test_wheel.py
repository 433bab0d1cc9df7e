"""The package as users get it: `python -m build` makes a wheel that installs into a fresh venv,
where the `convnet` command runs from the installed files, not from this source tree."""

import email
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from convnet import models
from conftest import requires

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

pytestmark = [pytest.mark.system, requires("build")]  # builds the wheel and installs it into a fresh venv


def run(*command, cwd):
    # A clean environment apart from what pip needs, so nothing points back into this checkout.
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("PYTHON", "CONVNET_", "VIRTUAL_ENV"))}
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=environment, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, f"{' '.join(map(str, command))} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # a copy, so the build leaves no build/ or egg-info behind in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    run(sys.executable, "-m", "build", "--outdir", work / "dist", source, cwd=work)  # the sdist, then the wheel from it
    wheels = list((work / "dist").glob("*.whl"))
    assert len(wheels) == 1 and len(list((work / "dist").glob("*.tar.gz"))) == 1
    return wheels[0]


def test_the_wheel_holds_the_package_its_type_marker_and_its_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name for name in names if name.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(archive.read(info))
    copied = wheel.parent.parent / "source" / "src"
    sources = sorted(str(path.relative_to(copied)) for path in (copied / "convnet").rglob("*.py"))
    assert sorted(name for name in names if name.endswith(".py")) == sources
    assert "convnet/py.typed" in names
    shipped = sorted(f"convnet/weights/{path.name}" for path in (copied / "convnet" / "weights").iterdir())
    assert shipped and sorted(name for name in names if name.startswith("convnet/weights/")) == shipped
    assert metadata["Name"] == PROJECT["name"] and metadata["Version"] == PROJECT["version"]
    assert metadata["License-Expression"] == "MIT" and metadata["License-File"] == "LICENSE"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    extras = [f'{requirement}; extra == "{extra}"' for extra, requirements in PROJECT["optional-dependencies"].items()
              for requirement in requirements]
    assert sorted(metadata.get_all("Requires-Dist")) == sorted(PROJECT["dependencies"] + extras)


def test_the_installed_command_runs_help_summary_and_demo(wheel, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv, cwd=tmp_path)
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel, cwd=tmp_path)
    located = run(venv / "bin" / "python", "-c", "import convnet; print(convnet.__file__); print(convnet.__version__)",
                  cwd=tmp_path).split()
    assert pathlib.Path(located[0]).is_relative_to(venv) and located[1] == PROJECT["version"]

    command = venv / "bin" / "convnet"
    assert run(command, "--help", cwd=tmp_path).startswith("usage: convnet ")
    summary = run(command, "summary", "reference_cnn", cwd=tmp_path)
    assert "with the weights that ship with convnet" in summary  # read from the installed package, checked
    parameters = sum(p.numel() for p in models.reference_cnn().parameters())  # counted by this checkout's own model
    assert f"Total params: {parameters:,}" in summary
    accuracy = re.fullmatch(r"final test accuracy: (\S+)", run(command, "demo", cwd=tmp_path).splitlines()[-1])
    assert accuracy and float(accuracy.group(1)) >= 0.95  # the bars are easy: the demo reaches 1.000
