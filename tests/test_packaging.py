"""The wheel holds nothing but feedbench/...: installing it never shadows `datasets` & co."""

import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("pipelines", "datasets", "text", "vision")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    # Build from a copy so that the checkout gets no build/ or egg-info.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", *PACKAGES):
        path = REPO / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(path, src / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(src)],
        check=True,
    )
    (wheel,) = out.glob("feedbench-*.whl")
    return wheel


def test_wheel_has_only_the_feedbench_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"feedbench"}
    assert "feedbench/__init__.py" not in names  # a namespace: no __init__ of its own
    for package in PACKAGES:
        assert f"feedbench/{package}/__init__.py" in names
    # Every module of the source tree, in every subpackage (a subpackage missing from pyproject's list is not)
    sources = {f"feedbench/{path.relative_to(REPO).as_posix()}" for package in PACKAGES
               for path in (REPO / package).rglob("*.py") if "__pycache__" not in path.parts}
    assert sources and sources <= set(names), sorted(sources - set(names))
    assert not any(name.startswith(("tests/", "benchmarks/", "feedbench/tests")) for name in names)


def test_wheel_declares_the_cli_and_python_floor(wheel):
    archive = zipfile.ZipFile(wheel)
    info = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    metadata = archive.read(info).decode()
    assert "Requires-Python: >=3.10" in metadata
    for dependency in ("torch", "torchvision", "tensorflow", "tensorflow-datasets", "nltk", "spacy", "pyarrow"):
        assert f"Requires-Dist: {dependency}" in metadata
    entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert "feedbench = feedbench.pipelines.cli:main" in entry_points


def test_version_is_the_installed_metadata():
    import feedbench.pipelines

    assert feedbench.pipelines.__version__ == version("feedbench")
    assert feedbench.pipelines.__version__[0].isdigit()


def test_importing_the_packages_imports_no_framework():
    code = (
        "import sys, feedbench.pipelines, feedbench.datasets, feedbench.text, feedbench.vision;"
        "print(sorted(m for m in ('torch', 'tensorflow', 'tensorflow_datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/")
    assert out.stdout.strip() == "[]"


def test_datasets_top_level_name_is_not_ours():
    code = "import importlib.util as u; s = u.find_spec('datasets'); print(s.origin if s else None)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd="/")
    assert str(REPO) not in out.stdout
