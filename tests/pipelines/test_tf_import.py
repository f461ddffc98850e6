import subprocess
import sys


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


def test_missing_tensorflow_is_a_clear_error(monkeypatch):
    from feedbench.pipelines import _tf
    from feedbench.pipelines.errors import MissingDependencyError

    import pytest

    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(MissingDependencyError, match="this needs TensorFlow"):
        _tf.import_tensorflow()
