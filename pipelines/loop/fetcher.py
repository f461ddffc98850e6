"""The fetcher: the loader's ``iter()`` and ``next()`` in a helper thread, so that the loop can stop waiting."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable
from typing import Any


class Fetcher:
    """Calls ``iter()`` and ``next()`` on the loader in a helper thread, one call at a time.

    Only so that the loop can stop waiting: ``next()`` on a stalled loader cannot be
    interrupted, but waiting for its answer can. The thread makes nothing ahead of time, so
    a synchronous producer stays synchronous.
    """

    def __init__(self, batches: Iterable[Any]) -> None:
        self._batches = batches
        self._iterator: Any = None
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._answers: queue.SimpleQueue = queue.SimpleQueue()
        self._waiting = False  # a request has no answer yet (the loader may be stalled in it)
        self._thread = threading.Thread(target=self._serve, name="feedbench-fetch", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while (request := self._requests.get()) is not None:
            try:
                if request == "iter":
                    self._iterator = iter(self._batches)
                    self._answers.put(("ok", None))
                else:
                    self._answers.put(("ok", next(self._iterator)))
            except StopIteration:
                self._answers.put(("end", None))
            except BaseException as exc:  # noqa: BLE001 - handed to the loop, which raises it with the step
                self._answers.put(("error", exc))
        self._iterator = None  # lets a DataLoader's workers shut down

    def call(self, request: str, timeout_s: float) -> tuple[str, Any]:
        """("ok", batch), ("end", None) or ("error", exception); raises queue.Empty on timeout."""
        self._requests.put(request)
        self._waiting = True
        answer = self._answers.get(timeout=timeout_s)
        self._waiting = False
        return answer

    def close(self, timeout_s: float = 30) -> None:
        """Ends the thread; waits for it unless it is stuck in a stalled loader's call, so that
        the loader's iterator (tf.data's C++ threads) is released before the interpreter exits:
        a daemon thread still inside it at exit can end the process with SIGABRT ("terminate
        called without an active exception")."""
        self._requests.put(None)
        if not self._waiting:
            self._thread.join(timeout_s)
