"""Running queries from the REPL: a thin layer over the embedded engine and the history store.

The compiler package imports no engine (ARCHITECTURE.md: dependencies point one way), so the engine and
the history sink are imported lazily, only when the user runs a query. When they cannot be imported the
REPL still works as a compiler front end: :class:`EngineUnavailable` carries a message the REPL prints
next to the SQL.

- STREAM → :func:`streams.live.run_live` (the simulators feed the embedded engine; a rich table updates
  in place until Ctrl-C);
- SHOW / FIND / COUNT → :meth:`streams.sinks.clickhouse.ClickHouseSink.show` (ClickHouse history, chdb
  on disk by default) → an Arrow table.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console

LIVE_MODULE = "streams.live"
HISTORY_MODULE = "streams.sinks.clickhouse"


class EngineUnavailable(RuntimeError):
    """The embedded engine (or the history store) could not be loaded or opened; ``str()`` says why."""


def _import(module_name: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as exc:  # any import failure means "not available", and the message says which
        raise EngineUnavailable(f"the embedded engine is not available: {module_name}: {exc}") from exc


class QueryRunner:
    """Executes SRQL for the REPL: STREAM live against the simulators, SHOW/FIND/COUNT against history.

    ``history_path`` is the chdb data directory (None: the sink's default, ``~/.serviceradar/chdb``);
    ``history_url`` a ClickHouse server URL instead. ``live_options`` go to ``run_live`` (``devices``,
    ``speed``, ``step_ms``, ``max_steps``).
    """

    def __init__(
        self,
        console: Console,
        *,
        history_path: Path | None = None,
        history_url: str | None = None,
        live_options: dict[str, Any] | None = None,
    ) -> None:
        self.console = console
        self.history_path = history_path
        self.history_url = history_url
        self.live_options = dict(live_options or {})
        self._sink: Any = None

    def run_stream(self, query: str) -> None:
        """Run a STREAM query live, rendering its results in place until Ctrl-C."""
        live = _import(LIVE_MODULE)
        with contextlib.suppress(KeyboardInterrupt):  # run_live stops on Ctrl-C itself; this covers start-up
            live.run_live(query, console=self.console, **self.live_options)
        self.console.print("[dim]stopped[/dim]")

    def run_history(self, query: str) -> Any:
        """Run a SHOW/FIND/COUNT query over the history store; returns an Arrow table."""
        return self._history_sink().show(query)

    def _history_sink(self) -> Any:
        if self._sink is None:
            module = _import(HISTORY_MODULE)
            try:
                self._sink = module.ClickHouseSink(path=self.history_path, url=self.history_url)
            except Exception as exc:  # a locked or unreadable directory, an unreachable server: say which
                where = self.history_url or self.history_path or "the default chdb directory"
                raise EngineUnavailable(f"the history store at {where} could not be opened: {exc}") from exc
        return self._sink

    def close(self) -> None:
        """Close the history store if it was opened."""
        if self._sink is not None:
            self._sink.close()
            self._sink = None


class CompileOnlyRunner(QueryRunner):
    """A runner that never executes: the REPL shows compiled SQL only (``srql --compile-only``)."""

    def run_stream(self, query: str) -> None:
        raise EngineUnavailable("execution is off (--compile-only)")

    def run_history(self, query: str) -> Any:
        raise EngineUnavailable("execution is off (--compile-only)")
