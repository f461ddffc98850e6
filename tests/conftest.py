"""Shared fixtures. torch and torchvision are imported first, before anything can import
TensorFlow: the other order crashes the interpreter (DESIGN.md, "Import order")."""

import contextlib
import hashlib
import os
import signal
import stat
from pathlib import Path

import pytest
import torch  # noqa: F401  (import order, see above)
import torchvision  # noqa: F401

from feedbench.datasets import make_image_folder, make_image_shards, make_text_corpus
from feedbench.pipelines.core.errors import described

# Ray 2.60 authenticates by default, reads the token once a process (a local instance started
# after it changed never came up), and would write one into the home folder: one token of the
# tests' own for the whole test process and what it starts, set before any test imports Ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", hashlib.sha256(f"feedbench tests {os.getpid()}".encode()).hexdigest())


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keeps the tests' cache (TFDS preparations, default datasets) out of the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FEEDBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory):
    """40 images in 4 classes, with every kind of file a real folder has."""
    root = tmp_path_factory.mktemp("data") / "images"
    return make_image_folder(root, 40, classes=4, seed=1, gray_fraction=0.1, png_fraction=0.1, cmyk_fraction=0.1)


@pytest.fixture(scope="session")
def text_corpus(tmp_path_factory):
    """300 documents in 3 classes, in small row groups so that there are several shards."""
    root = tmp_path_factory.mktemp("data") / "text"
    return make_text_corpus(root, 300, classes=3, seed=2, rows_per_group=32, rows_per_shard=128, workers=1)


@pytest.fixture(scope="session")
def small_folder(tmp_path_factory):
    """24 images of about 96x72 in 3 classes, with grayscale, CMYK and PNG files among them."""
    root = tmp_path_factory.mktemp("vision") / "folder"
    return make_image_folder(root, 24, classes=3, seed=11, size=(96, 72), gray_fraction=0.15, png_fraction=0.15,
                             cmyk_fraction=0.15, workers=1)


@pytest.fixture(scope="session")
def small_shards(small_folder, tmp_path_factory):
    return make_image_shards(small_folder.root, tmp_path_factory.mktemp("vision") / "shards", rows_per_group=8)


# The fault suite (tests/faults/, and fault cases elsewhere): every test that takes the `fault`
# fixture is a case; a broken promise is counted by its kind, and the totals are printed at
# the end of the run (docs/reliability.md).
BROKEN = ("hangs", "silent drops", "tracebacks", "lost results", "damage")
_FAULTS: dict[str, set[str]] = {kind: set() for kind in ("cases", *BROKEN)}


class Hang(Exception):
    """A case ran past its time bound."""


class Fault:
    """What a fault case promises, each check counted by the kind of promise it keeps."""

    def __init__(self, case: str) -> None:
        self.case = case
        _FAULTS["cases"].add(case)

    def broke(self, kind: str, message: str) -> None:
        _FAULTS[kind].add(self.case)
        pytest.fail(f"{kind}: {message}", pytrace=False)

    @contextlib.contextmanager
    def within(self, seconds: float):
        """Fails the case as a hang if its body takes longer than `seconds` (SIGALRM, main thread)."""

        def expired(signum, frame):
            raise Hang(f"still running after {seconds:g} s")

        previous = signal.signal(signal.SIGALRM, expired)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            yield
        except Hang as exc:
            self.broke("hangs", str(exc))
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def one_line(self, text: str, *names: str) -> str:
        """`text` (an error message or a command's stderr) is one line naming each of `names`."""
        lines = [line for line in text.strip().splitlines() if line.strip()]
        if "Traceback" in text or len(lines) != 1:
            self.broke("tracebacks", f"not one line: {text[-2000:]!r}")
        missing = [name for name in names if str(name) not in lines[0]]
        assert not missing, f"{lines[0]!r} does not name {missing}"
        return lines[0]

    def refused(self, call, *names: str, what: str = "the bad input") -> str:
        """The one line of the error `call()` raises, naming each of `names`; a silent drop
        if it raises nothing."""
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - the message is what is checked
            return self.one_line(described(exc), *names)
        self.broke("silent drops", f"{what} was taken without an error")

    def counted(self, skipped: int, expected: int) -> None:
        if skipped != expected:
            self.broke("silent drops", f"{expected} bad sample(s) dropped, {skipped} counted")

    def all_there(self, got: int, expected: int) -> None:
        """No sample lost without a word: `got` of `expected` good samples came out."""
        if got != expected:
            self.broke("silent drops", f"{got} of {expected} good samples came out")

    def kept(self, ok: bool, what: str) -> None:
        if not ok:
            self.broke("lost results", what)

    @staticmethod
    def digest(path) -> str:
        return tree_digest(path)

    def unchanged(self, before: str, after: str, what: str) -> None:
        if before != after:
            self.broke("damage", f"{what} changed")


def tree_digest(path) -> str:
    """SHA-256 over every name, mode and byte under `path` (links not followed)."""
    digest = hashlib.sha256()
    path = Path(path)
    for item in sorted([path, *path.rglob("*")]) if path.is_dir() else [path]:
        info = item.lstat()
        digest.update(f"{item.relative_to(path.parent)}\0{info.st_mode}\0".encode("utf-8", "surrogateescape"))
        if stat.S_ISREG(info.st_mode):
            digest.update(item.read_bytes())
        elif stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(item).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


@pytest.fixture()
def fault(request) -> Fault:
    """A fault case: checks that count what they find by kind (hangs, silent drops, tracebacks,
    lost results, damage)."""
    return Fault(request.node.nodeid)


def pytest_terminal_summary(terminalreporter):
    if _FAULTS["cases"]:
        totals = ", ".join(f"{len(_FAULTS[kind])} {kind}" for kind in ("cases", *BROKEN))
        terminalreporter.write_sep("-", f"fault suite: {totals}")
