"""The options of the disaggregated backends (``tf-service``, ``ray``), shared by the image and
the text configs, and the check that a remote address answers before anything waits on it.

A backend whose preprocessing runs in other processes takes one more option than the local
pipelines: where those processes are. Empty (the default) means a local service that the
loader starts on this machine, within the run's CPU budget, and ends with every process it
started; an address means an existing service, used as it is and left running.

- ``service``: ``grpc://host:port``, a tf.data service dispatcher.
- ``processing_mode``: tf.data service's ``"distributed_epoch"`` (the default: the dispatcher
  deals the dataset's files out to the workers, each element is made once an epoch) or
  ``"parallel_epochs"`` (every worker makes the whole epoch; K workers give K copies).
- ``ray_address``: a Ray cluster, ``host:port`` (its GCS, as ``ray start --head`` prints it) or
  ``ray://host:port`` (Ray Client).

Imports no framework.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from feedbench.pipelines.core.errors import ConfigError

PROCESSING_MODES = ("distributed_epoch", "parallel_epochs")
CONNECT_TIMEOUT_S = 5.0


def host_port(address: str, option: str, schemes: tuple[str, ...]) -> tuple[str, int]:
    """(host, port) of `address`, ``[scheme://]host:port`` with a scheme of `schemes` (or none);
    ConfigError naming `option` otherwise."""
    text = address.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "", text
    elif scheme not in schemes:
        raise ConfigError(f"{option} {address!r}: the scheme must be {' or '.join(s + '://' for s in schemes)}")
    try:
        parts = urlsplit(f"//{rest}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or port is None or parts.path not in ("", "/"):
        raise ConfigError(f"{option} {address!r}: expected host:port, e.g. {schemes[0]}://10.0.0.5:5050")
    return host, port


def unreachable(address: str, option: str, schemes: tuple[str, ...], timeout_s: float = CONNECT_TIMEOUT_S,
                ) -> str | None:
    """Why nothing accepts a TCP connection at `address` within `timeout_s` ("Connection
    refused"), or None when something does. ConfigError for an address that is not one."""
    try:
        with socket.create_connection(host_port(address, option, schemes), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def check_reachable(address: str, option: str, schemes: tuple[str, ...], what: str,
                    timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Raises ConfigError, in one line naming `address`, unless something accepts a TCP
    connection there within `timeout_s`: a client of a dead address retries for ever."""
    reason = unreachable(address, option, schemes, timeout_s)
    if reason:
        raise ConfigError(f"{what} at {address} cannot be reached ({reason})")


# option -> (its schemes, what answers there)
ADDRESSES = {"service": (("grpc",), "the tf.data service dispatcher"), "ray_address": (("ray",), "the Ray cluster")}


def check_addresses(options: Mapping[str, Any]) -> None:
    """Checks that every remote address among `options` answers (see check_reachable)."""
    for name, (schemes, what) in ADDRESSES.items():
        if options.get(name):
            check_reachable(str(options[name]), name, schemes, what)


@dataclass(frozen=True)
class ServiceOptions:
    """The ``tf-service`` backend's options, beside its task's (see the module).

    Attributes:
        service: ``grpc://host:port`` of an existing dispatcher; "" starts a local one with
            `workers` worker processes for the loader's lifetime.
        processing_mode: "distributed_epoch" or "parallel_epochs".
    """

    service: str = ""
    processing_mode: str = "distributed_epoch"

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]  # the task's config's checks
        if not isinstance(self.service, str):
            raise ConfigError(f"service must be grpc://host:port or empty, got {self.service!r}")
        if self.service:
            host_port(self.service, "service", ("grpc",))
        if self.processing_mode not in PROCESSING_MODES:
            raise ConfigError(f"processing_mode must be one of {', '.join(PROCESSING_MODES)}, "
                              f"got {self.processing_mode!r}")


@dataclass(frozen=True)
class RayOptions:
    """The ``ray`` backend's option, beside its task's (see the module).

    Attributes:
        ray_address: ``host:port`` or ``ray://host:port`` of an existing cluster; "" starts a
            local Ray instance for the loader's lifetime.
    """

    ray_address: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]
        if not isinstance(self.ray_address, str):
            raise ConfigError(f"ray_address must be host:port, ray://host:port or empty, got {self.ray_address!r}")
        if self.ray_address:
            host_port(self.ray_address, "ray_address", ("ray",))
