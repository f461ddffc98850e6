import logging
import os
import subprocess
import sys

import pytest

from feedbench.pipelines.core import frameworks as _tf


def _python(*lines):
    """Runs the lines in a fresh interpreter; returns the completed process."""
    out = subprocess.run([sys.executable, "-c", "\n".join(lines)], capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr
    return out


def _cpp_sources(text):
    """The `file.cc:line` of each line of TensorFlow's C++ logging in `text`."""
    return [line.split("] ")[0].split()[-1] for line in text.splitlines() if _tf._CPP_LOG_LINE.match(line)]


def test_tensorflow_comes_after_torch_and_sees_no_gpu():
    out = _python("import sys",
                  "from feedbench.pipelines.core.frameworks import import_tensorflow",
                  "tf = import_tensorflow()",
                  "order = [m for m in sys.modules if m in ('torch', 'torchvision', 'tensorflow')]",
                  "print(order, tf.config.get_visible_devices('GPU'))")
    assert out.stdout.strip() == "['torch', 'torchvision', 'tensorflow'] []"
    # TensorFlow's C++ start-up lines (oneDNN, cuInit, absl) do not reach the terminal.
    assert _cpp_sources(out.stderr) == [] and "absl::InitializeLog" not in out.stderr, out.stderr


def test_tensorflow_start_up_lines_are_debug_log_records():
    plain = _python("import os", "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')",  # as import_tensorflow does
                    "import torch, torchvision.ops, tensorflow as tf", "tf.config.set_visible_devices([], 'GPU')")
    said = _python("import logging",
                   "logging.basicConfig(level=logging.DEBUG, format='%(name)s|%(message)s')",
                   "from feedbench.pipelines.core.frameworks import import_tensorflow",
                   "import_tensorflow()")
    records = [line.split("|", 1)[1] for line in said.stderr.splitlines()
               if line.startswith("feedbench.pipelines.core.frameworks|")]
    assert _cpp_sources(plain.stderr), "TensorFlow printed no start-up line here: nothing to check"
    assert (_cpp_sources("\n".join(r.removeprefix("tensorflow start-up: ") for r in records))
            == _cpp_sources(plain.stderr))


def test_fd2_capture_keeps_c_level_log_lines_and_passes_the_rest_on(capfd, caplog):
    cpp = "I0000 00:00:1795413169.664157   15216 port.cc:153] oneDNN custom operations are on."
    with _tf._captured_fd2() as lines:
        os.write(2, f"{cpp}\nsomething else\n".encode())
    assert lines == [cpp, "something else"]
    with caplog.at_level(logging.DEBUG, logger="feedbench.pipelines.core.frameworks"):
        _tf._pass_on(lines)
    assert [r.getMessage() for r in caplog.records] == [f"tensorflow start-up: {cpp}"]
    assert capfd.readouterr().err == "something else\n"


def test_missing_tensorflow_is_a_clear_error(monkeypatch):
    from feedbench.pipelines.core.errors import MissingDependencyError

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(MissingDependencyError, match="this needs TensorFlow"):
        _tf.import_tensorflow()


def test_a_failed_import_says_what_tensorflow_wrote(monkeypatch):
    from feedbench.pipelines.core.errors import MissingDependencyError

    def broken(name):
        os.write(2, b"libtensorflow_framework.so.2: cannot open shared object file\n")
        raise ImportError("DLL load failed")

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setattr(_tf, "_preload_torch", lambda: None)
    monkeypatch.setattr(_tf.importlib, "import_module", broken)
    with pytest.raises(MissingDependencyError, match="DLL load failed.*it said: libtensorflow_framework"):
        _tf.import_tensorflow()
