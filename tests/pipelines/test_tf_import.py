import logging
import os
import subprocess
import sys

import pytest

from feedbench.pipelines import _tf


def test_tensorflow_comes_after_torch_and_sees_no_gpu():
    code = (
        "import sys\n"
        "from feedbench.pipelines._tf import import_tensorflow\n"
        "tf = import_tensorflow()\n"
        "order = [m for m in sys.modules if m in ('torch', 'torchvision', 'tensorflow')]\n"
        "print(order, tf.config.get_visible_devices('GPU'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['torch', 'torchvision', 'tensorflow'] []"
    # TensorFlow's C++ start-up lines (oneDNN, cuInit, absl) do not reach the terminal.
    assert "port.cc" not in out.stderr and "absl::InitializeLog" not in out.stderr, out.stderr


def test_tensorflow_start_up_lines_are_debug_log_records():
    code = (
        "import logging\n"
        "logging.basicConfig(level=logging.DEBUG, format='%(name)s|%(message)s')\n"
        "from feedbench.pipelines._tf import import_tensorflow\n"
        "import_tensorflow()\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr
    startup = [line for line in out.stderr.splitlines() if line.startswith("feedbench.pipelines._tf|")]
    assert any("port.cc" in line for line in startup), out.stderr


def test_fd2_capture_keeps_c_level_log_lines_and_passes_the_rest_on(capfd, caplog):
    cpp = "I0000 00:00:1795413169.664157   15216 port.cc:153] oneDNN custom operations are on."
    with _tf._captured_fd2() as lines:
        os.write(2, f"{cpp}\nsomething else\n".encode())
    assert lines == [cpp, "something else"]
    with caplog.at_level(logging.DEBUG, logger="feedbench.pipelines._tf"):
        _tf._pass_on(lines)
    assert [r.getMessage() for r in caplog.records] == [f"tensorflow start-up: {cpp}"]
    assert capfd.readouterr().err == "something else\n"


def test_missing_tensorflow_is_a_clear_error(monkeypatch):
    from feedbench.pipelines.errors import MissingDependencyError

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(MissingDependencyError, match="this needs TensorFlow"):
        _tf.import_tensorflow()


def test_a_failed_import_says_what_tensorflow_wrote(monkeypatch):
    from feedbench.pipelines.errors import MissingDependencyError

    def broken(name):
        os.write(2, b"libtensorflow_framework.so.2: cannot open shared object file\n")
        raise ImportError("DLL load failed")

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setattr(_tf, "_preload_torch", lambda: None)
    monkeypatch.setattr(_tf.importlib, "import_module", broken)
    with pytest.raises(MissingDependencyError, match="DLL load failed.*it said: libtensorflow_framework"):
        _tf.import_tensorflow()
