"""Running queries from the REPL: a thin layer over the embedded engine and the history store.

The compiler package imports no engine (ARCHITECTURE.md: dependencies point one way), so the engine is
imported lazily, only when the user runs a query. When it cannot be imported the REPL still works as a
compiler front end: :class:`EngineUnavailable` carries a message the REPL prints next to the SQL.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console

# The engine's entry points, by module and by the function names the engine offers (first found wins).
LIVE_MODULE = "streams.live"
LIVE_FUNCTIONS = ("run_live", "run_stream", "live")
HISTORY_MODULE = "streams.history"
HISTORY_FUNCTIONS = ("run_show", "query_history", "show")


class EngineUnavailable(RuntimeError):
    """The embedded engine (or the history store) could not be loaded; ``str()`` says why."""


def _entry_point(module_name: str, names: tuple[str, ...]) -> Callable[..., Any]:
    try:
        module: ModuleType = importlib.import_module(module_name)
    except Exception as exc:  # any import failure means "not available", and the message says which
        raise EngineUnavailable(f"the embedded engine is not available: {module_name}: {exc}") from exc
    for name in names:
        fn = getattr(module, name, None)
        if callable(fn):
            return fn
    raise EngineUnavailable(
        f"the embedded engine is not available: {module_name} has none of {', '.join(names)}"
    )


class QueryRunner:
    """Executes SRQL for the REPL: STREAM live against the simulators, SHOW/FIND/COUNT against history.

    ``history_dir`` is the history store's directory (None: the engine's default).
    """

    def __init__(self, console: Console, *, history_dir: Path | None = None) -> None:
        self.console = console
        self.history_dir = history_dir

    def run_stream(self, query: str) -> None:
        """Run a STREAM query live, rendering its results in place until Ctrl-C."""
        run_live = _entry_point(LIVE_MODULE, LIVE_FUNCTIONS)
        try:
            run_live(query, console=self.console)
        except KeyboardInterrupt:
            self.console.print("[dim]stopped[/dim]")

    def run_history(self, query: str) -> Any:
        """Run a SHOW/FIND/COUNT query over the history store; returns an Arrow table."""
        run_show = _entry_point(HISTORY_MODULE, HISTORY_FUNCTIONS)
        kwargs: dict[str, Any] = {}
        if self.history_dir is not None:
            kwargs["path"] = self.history_dir
        return run_show(query, **kwargs)


class CompileOnlyRunner(QueryRunner):
    """A runner that never executes: the REPL shows compiled SQL only (``srql --compile-only``)."""

    def run_stream(self, query: str) -> None:
        raise EngineUnavailable("execution is off (--compile-only)")

    def run_history(self, query: str) -> Any:
        raise EngineUnavailable("execution is off (--compile-only)")
