"""The local tf.data service: a worker that cannot start is an error naming it, not a hang, and
nothing it started is left; a dispatcher that cannot take its port is one line naming it."""

import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from feedbench.pipelines.core.errors import LoaderError
from feedbench.pipelines.core.tf_service import LocalService


class FailingWorkers(LocalService):
    """Workers that write a reason and exit at once, as one whose TensorFlow cannot load does."""

    def _start_worker(self, k):
        with open(Path(self._logs.name) / f"worker-{k}.log", "w") as log:
            return subprocess.Popen([sys.executable, "-c", "import sys; sys.stderr.write('no TensorFlow here\\n'); "
                                     "sys.exit(3)"], stdout=subprocess.PIPE, stderr=log, text=True)


def _started(service):
    """start() on a thread of its own: (what it raised, whether it returned within 60 s)."""
    raised = []

    def start():
        try:
            service.start()
        except LoaderError as exc:
            raised.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    thread.join(60)
    return raised, not thread.is_alive()


def test_a_worker_that_cannot_start_is_named_and_nothing_is_left():
    service = FailingWorkers(2)
    raised, returned = _started(service)
    assert returned, "start() hung"
    assert len(raised) == 1
    assert "could not start: worker" in str(raised[0]) and "exited with status 3: no TensorFlow here" in str(raised[0])
    assert service.workers == [] and service.dispatcher is None


def test_a_dispatcher_port_in_use_is_one_line_naming_it():
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LoaderError, match=rf"dispatcher cannot start on port {port}"):
            LocalService(1, port=port).start()
