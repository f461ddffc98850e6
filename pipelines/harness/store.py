"""The results folder of a grid: :class:`ResultStore` keeps its rows in ``results.json`` and
``results.parquet``, both rewritten whole after every cell (written beside, then renamed
over: an interrupted run leaves the last complete version). It refuses to mix settings,
machines, library versions or datasets in one folder, and lets one process at a time write
to a folder (two would each rewrite the files without the other's rows).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from feedbench.pipelines.core.errors import ConfigError, DatasetError
from feedbench.pipelines.core.files import check_writable, write_atomically, write_text_atomically
from feedbench.pipelines.core.machine import machine_facts
from feedbench.pipelines.harness.plan import Cell, Settings, data_fingerprint
from feedbench.pipelines.loop.metrics import contended
from feedbench.pipelines.loop.result import RunResult

RESULTS_JSON = "results.json"
RESULTS_PARQUET = "results.parquet"


class ResultStore:
    """The rows of one results folder, rewritten whole and atomically after each change.

    Use :meth:`open` to measure into a folder and :meth:`load` to read one.
    """

    def __init__(self, out: Path, rows: list[dict[str, Any]], settings: Settings | None, *,
                 retry_failed: bool = False, retry_contended: bool = False) -> None:
        self.out = out
        self.rows = rows
        self.settings = settings
        self.retry_failed = retry_failed
        self.retry_contended = retry_contended
        self._holds = False  # whether closing this store lets other processes write again

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Lets other processes write to the folder again (a store from :meth:`open` holds it)."""
        if self._holds:
            self._holds = False
            _unlock(self.out)

    @classmethod
    def load(cls, out: str | os.PathLike[str], *, hold: bool = False) -> ResultStore:
        """The results saved in `out` (DatasetError when there are none). With `hold`, the folder
        is held by this process first, as by :meth:`open`, so that what is drawn from the rows is
        not overwritten by a grid still measuring into it: use the store in a ``with`` block.

        Raises:
            ConfigError: `hold` and another process is writing to the folder.
        """
        out = Path(out)
        if not (out / RESULTS_JSON).is_file():
            raise DatasetError(f"{out}: not a feedbench results folder (no {RESULTS_JSON}; made by feedbench "
                               "compare, sweep or demo)")
        if not hold:
            return cls._read(out)
        return cls._holding(out, lambda: cls._read(out), busy=(
            f"{out}: another feedbench process is measuring into it; run report again when it ends "
            "(it redraws the report itself then)"))

    @classmethod
    def _read(cls, out: Path) -> ResultStore:
        path = out / RESULTS_JSON
        try:
            rows = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DatasetError(f"{path}: not readable as feedbench results ({exc})") from exc
        if not isinstance(rows, list):
            raise DatasetError(f"{path}: not feedbench results (expected a list of rows, got {type(rows).__name__})")
        for index, row in enumerate(rows):
            _check_row(path, index, row)
        return cls(out, rows, None)

    @classmethod
    def open(cls, out: str | os.PathLike[str], settings: Settings, *, resume: bool,
             retry_failed: bool = False, retry_contended: bool = False) -> ResultStore:
        """A folder to measure into with `settings`, held by this process until :meth:`close`
        (or the process ends): use it in a ``with`` block. With `retry_failed`, cells whose
        saved run failed count as not measured (:meth:`measured`), so they run again; with
        `retry_contended`, so do cells whose run shared its CPUs (contention above 0.05).

        Raises:
            ConfigError: The folder holds results and `resume` is false, or it holds results
                of other settings (the message names what differs), or another process is
                writing to it.
        """
        out = Path(out)
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out}: exists and is not a folder")
        if out.is_dir() and not (out / RESULTS_JSON).is_file() and any(out.iterdir()):
            raise ConfigError(f"--out {out}: not a feedbench results folder (it holds files but no {RESULTS_JSON}); "
                              "choose a new or empty folder")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot create the folder ({exc.strerror})") from exc
        check_writable(out, "--out")  # before measuring, not at the first save
        store = cls._holding(out, lambda: cls._checked(out, settings, resume=resume))
        store.retry_failed = retry_failed
        store.retry_contended = retry_contended
        return store

    @staticmethod
    def _holding(out: Path, make: Callable[[], ResultStore], busy: str | None = None) -> ResultStore:
        """The store `make` returns, holding `out` unless this process held it already (then the
        first holder's close releases it); `out` is released again if `make` fails."""
        acquired = _lock(out, busy)
        try:
            store = make()
        except BaseException:
            if acquired:
                _unlock(out)
            raise
        store._holds = acquired
        return store

    @classmethod
    def _checked(cls, out: Path, settings: Settings, *, resume: bool) -> ResultStore:
        """The store of `out` (locked by this process) if its rows may be continued with `settings`."""
        if not (out / RESULTS_JSON).is_file():
            return cls(out, [], settings)
        rows = cls.load(out).rows
        if rows and not resume:
            raise ConfigError(f"--out {out} already holds {len(rows)} results; pass --resume to continue them "
                              "(or add cells to them), or choose another --out")
        differences = _differences(rows[0]["settings"] if rows else {}, settings.to_dict())
        if rows and differences:
            raise ConfigError(f"--out {out} holds results of other settings ({'; '.join(differences)}); "
                              "choose another --out to measure these")
        changed = _differences(*_fingerprints(rows[0], settings)) if rows else []
        if changed:
            raise ConfigError(f"--out {out} holds results from another machine, software or dataset "
                              f"({'; '.join(changed)}); choose another --out to measure these")
        return cls(out, rows, settings)

    def find(self, cell: Cell) -> dict[str, Any] | None:
        """The row of `cell`, or None when it has not been measured here."""
        for row in self.rows:
            if Cell.of(row) == cell:
                return row
        return None

    def measured(self, cell: Cell) -> dict[str, Any] | None:
        """The row of `cell` if it need not run again: saved, a success unless failed runs are
        to be retried, and one that had its CPUs to itself unless contended runs are."""
        row = self.find(cell)
        if row is None or (self.retry_failed and not row["ok"]):
            return None
        if self.retry_contended and row["ok"] and contended(row.get("contention")):
            return None
        return row

    def add(self, row: dict[str, Any]) -> None:
        """Adds a row (replacing one of the same cell) and writes both files."""
        cell = Cell.of(row)
        self.rows = [r for r in self.rows if Cell.of(r) != cell] + [row]
        self.write()

    def write(self) -> None:
        text = json.dumps(self.rows, indent=1, sort_keys=True, default=str)
        write_text_atomically(self.out / RESULTS_JSON, text + "\n")
        table = arrow_table(self.rows)

        def parquet(tmp: Path) -> None:
            import pyarrow.parquet as pq

            pq.write_table(table, tmp)

        write_atomically(self.out / RESULTS_PARQUET, parquet)


# The folders this process writes to, each held with flock on the folder itself (no lock file
# to leave behind): path -> open descriptor. The kernel drops the lock when the process dies.
_HELD: dict[str, int] = {}


def _lock(out: Path, busy: str | None = None) -> bool:
    """Holds `out` for this process, or raises ConfigError (`busy`, or a line for --out) if
    another process holds it. False when this process held it already."""
    key = os.path.realpath(out)
    if key in _HELD:
        return False
    fd = os.open(key, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise ConfigError(busy or f"--out {out}: another feedbench process is writing to it; wait until it ends "
                          "(then --resume), or choose another --out") from exc
    _HELD[key] = fd
    return True


def _unlock(out: Path) -> None:
    fd = _HELD.pop(os.path.realpath(out), None)
    if fd is not None:
        os.close(fd)  # closing the only descriptor of the lock releases it


# What must match, besides the settings, for new rows to join old ones (--resume).
FINGERPRINT = ("cpu_model", "cpu_cores", "gpu", "data_fingerprint")
# Every field a results row must have (a run that failed leaves RunResult's figures at their defaults).
ROW_KEYS = ("task", "framework", "workers", "ok", "settings", "samples_per_s", "starvation", "window_s", "epochs")


def _check_row(path: Path, index: int, row: Any) -> None:
    """DatasetError naming the file and row when `row` is not a results row."""
    if not isinstance(row, dict):
        raise DatasetError(f"{path}: row {index} is not a feedbench result (a {type(row).__name__}, not an object)")
    missing = [key for key in ROW_KEYS if key not in row]
    if missing:
        raise DatasetError(f"{path}: row {index} is not a feedbench result (it lacks {', '.join(missing)})")
    if not isinstance(row["settings"], dict) or not isinstance(row["ok"], bool):
        raise DatasetError(f"{path}: row {index} is not a feedbench result (settings must be an object, ok true/false)")
    try:
        Cell.of(row)
    except ConfigError as exc:
        raise DatasetError(f"{path}: row {index}: {exc}") from None


def _fingerprints(row: Mapping[str, Any], settings: Settings) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the fingerprint a saved row holds, this machine's now): machine, versions, dataset.
    A key an older row lacks is left out of both (it cannot be checked)."""
    now = {**machine_facts(), "data_fingerprint": data_fingerprint(settings.data)}
    keys = [k for k in (*FINGERPRINT, *sorted(k for k in now if k.endswith("_version"))) if k in row]
    return {k: row[k] for k in keys}, {k: now.get(k) for k in keys}


def _differences(before: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    keys = sorted(set(before) | set(now))
    return [f"{k}: {before.get(k)!r} there, {now.get(k)!r} now" for k in keys if before.get(k) != now.get(k)]


# Columns of a results row besides RunResult's fields, with their Arrow types (by name).
_EXTRA_COLUMNS = (("task", "string"), ("framework", "string"), ("workers", "string"), ("command", "string"),
                  ("started_at", "string"), ("wall_s", "float64"), ("settings", "string"), ("cpu_model", "string"),
                  ("cpu_cores", "int64"), ("cpus_usable", "int64"), ("memory_bytes", "int64"), ("gpu", "string"),
                  ("python", "string"), ("platform", "string"),
                  ("data_fingerprint", "string"))


def arrow_table(rows: Sequence[Mapping[str, Any]]):
    """The rows as a pyarrow Table: RunResult's columns (config as JSON text), the cell,
    the settings (JSON text) and the machine's facts, one column each."""
    import pyarrow as pa

    versions = sorted({k for row in rows for k in row if k.endswith("_version")})
    extra = [*_EXTRA_COLUMNS, *((name, "string") for name in versions)]
    schema = pa.schema([*RunResult.arrow_schema(), *(pa.field(n, getattr(pa, t)()) for n, t in extra)])
    flat = []
    for row in rows:
        record = RunResult.from_dict(row).to_arrow_row()
        for name, kind in extra:
            value = row.get(name)
            if name in ("workers", "settings") and value is not None:
                value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            if kind == "float64" and value is not None and not isinstance(value, float):
                value = float(value)
            record[name] = value
        flat.append(record)
    return pa.Table.from_pylist(flat, schema=schema)
