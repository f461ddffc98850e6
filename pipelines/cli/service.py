"""`feedbench service`: a tf.data service (a dispatcher and K workers) on this machine, for the
``tf-service`` runs of other machines (``--service grpc://THIS-HOST:PORT``) until stopped."""

from __future__ import annotations

import argparse
import os
import socket

from feedbench.pipelines.core.errors import ConfigError
from feedbench.pipelines.core.machine import usable_cpus


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Adds `service` to the CLI."""
    service = commands.add_parser(
        "service", help="serve a tf.data service (dispatcher and workers) for tf-service runs elsewhere",
        description="Starts a tf.data service dispatcher on --port and --workers worker processes on this machine, "
        "and serves until Ctrl-C or SIGTERM, when it ends every process it started. Runs on other machines use it "
        "with --framework tf-service --service grpc://HOST:PORT; their data must be at the same paths here (the "
        "workers read the files the pipeline names).")
    service.add_argument("--workers", type=int, default=1, metavar="K", help="worker processes (default 1)")
    service.add_argument("--port", type=int, default=5050, help="the dispatcher's port (default 5050; 0: any free)")
    service.add_argument("--host", default=socket.gethostname(),
                         help="the name clients reach this machine by (default: this host's name)")
    service.add_argument("--cpus", type=int, metavar="K", help="pin the service to the first K usable CPUs")
    service.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> list[str]:
    from feedbench.pipelines.core.tf_service import serve

    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {args.workers}")
    if not 0 <= args.port < 65536:
        raise ConfigError(f"--port must be from 0 to 65535, got {args.port}")
    if args.cpus is not None:
        cpus = usable_cpus()
        if not 1 <= args.cpus <= len(cpus):
            raise ConfigError(f"--cpus must be from 1 to {len(cpus)} (the CPUs this process may use), got {args.cpus}")
        os.sched_setaffinity(0, cpus[: args.cpus])  # the workers inherit it
    serve(args.workers, args.port, args.host,
          lambda address: print(f"feedbench: tf.data service with {args.workers} worker(s) serving at {address}; "
                                "Ctrl-C ends it", flush=True))
    return ["feedbench: tf.data service stopped; its workers are ended"]
