"""The ``srql`` REPL: type SRQL, see the compiled SQL, the plan, and (with the engine) live results.

``srql`` with no arguments lands in :func:`main`. The prompt is prompt_toolkit (history file, completion,
highlighting, multi-line input); output is rich. What Enter does, the meta-commands and how queries run
are described in docs/repl.md.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

import srql_compiler
from srql_compiler.errors import SRQLError, did_you_mean
from srql_compiler.repl_completer import META_COMMANDS, PROTON_VERSIONS, TARGETS, SRQLCompleter
from srql_compiler.repl_lexer import PUNCTUATION, REPL_STYLE, SRQLLexer, statement_is_complete, tokenize
from srql_compiler.repl_render import arrow_table, columns_table, entities_table, entity_table, plan_tree
from srql_compiler.repl_runner import CompileOnlyRunner, EngineUnavailable, QueryRunner
from streams.catalog import CATALOG

DEFAULT_HISTORY = "~/.srql_history"
_QUIT = frozenset({"\\quit", "\\q", "\\exit"})
_ALIASES = {"\\d": "\\describe", "\\h": "\\help", "\\?": "\\help"}


def history_path(explicit: str | None = None) -> Path:
    """The history file: ``--history``, else ``$SRQL_HISTORY``, else ``~/.srql_history``."""
    return Path(explicit or os.environ.get("SRQL_HISTORY") or DEFAULT_HISTORY).expanduser()


def split_statements(text: str) -> list[str]:
    """Statements of a buffer, split at ``;`` outside string literals (empty ones dropped)."""
    statements, current = [], []
    for kind, tok in tokenize(text):
        if kind == PUNCTUATION and tok == ";":
            statements.append("".join(current))
            current = []
        else:
            current.append(tok)
    statements.append("".join(current))
    return [s.strip() for s in statements if s.strip()]


@dataclass
class ReplState:
    """What the meta-commands change."""

    target: str = "proton"
    proton_version: str = "3"
    show_sql: bool = False
    last_query: str | None = None
    notes_shown: set[str] = field(default_factory=set)


class Repl:
    """Executes one submitted buffer at a time; knows nothing about prompt_toolkit."""

    def __init__(self, console: Console, runner: QueryRunner, state: ReplState | None = None) -> None:
        self.console = console
        self.runner = runner
        self.state = state or ReplState()

    # -- entry -------------------------------------------------------------------------------------

    def execute(self, text: str) -> bool:
        """Run a submitted buffer (meta-command or statements). Returns False when the user quits."""
        text = text.strip()
        if text.startswith("\\"):
            return self.meta(text)
        for statement in split_statements(text):
            self.run_query(statement)
        return True

    # -- queries -----------------------------------------------------------------------------------

    def compile(self, query: str) -> Any | None:
        """Compile for the current target (SQL pretty-printed), or print the diagnostic and return None."""
        state = self.state
        return self._guarded(
            lambda: srql_compiler.compile(query, state.target, proton_version=state.proton_version, pretty=True)
        )

    def bind(self, query: str) -> Any | None:
        """The logical plan (the same for every target), or print the diagnostic and return None."""
        return self._guarded(lambda: srql_compiler.bind(query))

    def _guarded(self, step: Callable[[], Any]) -> Any | None:
        try:
            return step()
        except SRQLError as err:
            self.console.print(Text(str(err), style="bold red"), soft_wrap=True)
        except Exception as exc:  # a compiler bug must not end the session; show it plainly
            self.console.print(Text(f"internal compiler error: {type(exc).__name__}: {exc}", style="red"))
        return None

    def run_query(self, query: str) -> None:
        """Compile ``query``, print warnings, then run it (or show its SQL when nothing can run it)."""
        self.state.last_query = query  # \explain and \sql refer to it even when this target refuses it
        compiled = self.compile(query)
        if compiled is None:
            return
        for warning in compiled.warnings:
            self.console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)
        if self.state.show_sql:
            self.print_sql(compiled.sql)
        try:
            if compiled.plan.statement == "stream":
                self.runner.run_stream(query)
            else:
                self.console.print(arrow_table(self.runner.run_history(query)))
        except EngineUnavailable as exc:
            if not self.state.show_sql:
                self.print_sql(compiled.sql)
            self._note_once(str(exc))
        except SRQLError as err:  # the history store compiles for its own dialect, which may refuse
            self.console.print(Text(str(err), style="bold red"), soft_wrap=True)
        except Exception as exc:  # a failing store or engine must not end the session
            self.console.print(Text(f"the query failed: {type(exc).__name__}: {exc}", style="red"), soft_wrap=True)

    def print_sql(self, sql: str) -> None:
        """The SQL, highlighted, never wrapped or padded (so it can be copied as is)."""
        highlighted = Syntax(sql, "sql", theme="ansi_dark").highlight(sql)
        highlighted.rstrip()
        self.console.print(highlighted, soft_wrap=True)

    def _note_once(self, note: str) -> None:
        if note not in self.state.notes_shown:
            self.state.notes_shown.add(note)
            self.console.print(Text(f"({note}; showing the compiled SQL)", style="dim"), soft_wrap=True)

    # -- meta-commands -----------------------------------------------------------------------------

    def meta(self, text: str) -> bool:
        command, _, arg = text.partition(" ")
        command = _ALIASES.get(command, command)
        arg = arg.strip().rstrip(";").strip()
        if command in _QUIT:
            return False
        handler = {
            "\\target": self._target,
            "\\version": self._version,
            "\\sql": self._sql,
            "\\explain": self._explain,
            "\\describe": self._describe,
            "\\help": self._help,
        }.get(command)
        if handler is None:
            hint = did_you_mean(command, [*META_COMMANDS, *_QUIT])
            suffix = f"; did you mean {hint}?" if hint else "; \\help lists the commands"
            self.console.print(Text(f"unknown command {command}{suffix}", style="red"))
        else:
            handler(arg)
        return True

    def _target(self, arg: str) -> None:
        if arg and arg not in TARGETS:
            choices = ", ".join(TARGETS)
            self.console.print(Text(f"unknown target {arg!r}: choose one of {choices}", style="red"))
            return
        if arg:
            self.state.target = arg
        self.console.print(f"target: {self.state.target}")

    def _version(self, arg: str) -> None:
        if arg and arg not in PROTON_VERSIONS:
            versions = ", ".join(PROTON_VERSIONS)
            self.console.print(Text(f"unknown Proton version {arg!r}: choose one of {versions}", style="red"))
            return
        if arg:
            self.state.proton_version = arg
        self.console.print(f"Proton version: {self.state.proton_version}")

    def _sql(self, arg: str) -> None:
        if arg and arg.lower() not in ("on", "off"):
            compiled = self.compile(arg)
            if compiled is not None:
                self.print_sql(compiled.sql)
                self.console.print(columns_table(compiled.columns))
            return
        self.state.show_sql = (arg.lower() == "on") if arg else not self.state.show_sql
        self.console.print(f"showing compiled SQL: {'on' if self.state.show_sql else 'off'}")
        if self.state.show_sql and self.state.last_query:
            compiled = self.compile(self.state.last_query)
            if compiled is not None:
                self.print_sql(compiled.sql)

    def _explain(self, arg: str) -> None:
        query = arg or self.state.last_query
        if not query:
            hint = "nothing to explain yet: \\explain QUERY, or run a query first"
            self.console.print(Text(hint, style="red"))
            return
        plan = self.bind(query)
        if plan is not None:
            self.console.print(plan_tree(plan))

    def _describe(self, arg: str) -> None:
        if not arg:
            self.console.print(entities_table(CATALOG))
            return
        entities = CATALOG.candidates(arg)
        if not entities:
            hint = did_you_mean(arg, CATALOG.all_names())
            suffix = f"; did you mean {hint!r}?" if hint else ""
            self.console.print(Text(f"unknown entity {arg!r}{suffix}", style="red"))
        for entity in entities:
            self.console.print(entity_table(entity))

    def _help(self, _arg: str) -> None:
        table = Table(title="srql REPL", header_style="bold", show_header=False)
        table.add_column("command")
        table.add_column("what it does")
        for name, doc in META_COMMANDS.items():
            table.add_row(name, doc)
        self.console.print(table)
        self.console.print(
            "Enter runs a finished one-line query; an unfinished line (ending in WHERE, AND, a comma, an "
            "open quote or parenthesis) continues on the next line. A multi-line query runs at ';' or a "
            "blank line; Alt-Enter always runs. Tab completes keywords, entities and fields.",
            soft_wrap=True,
        )


# -- prompt_toolkit wiring ---------------------------------------------------------------------------


def _key_bindings() -> KeyBindings:
    kb = KeyBindings()

    @kb.add("enter")
    def _enter(event: KeyPressEvent) -> None:
        buffer = event.current_buffer
        # A completion picked with Tab or the arrows is already in the text: close the menu and let Enter
        # mean what it means without the menu (the same result as typing the word out).
        buffer.complete_state = None
        if statement_is_complete(buffer.text):
            buffer.validate_and_handle()
        else:
            buffer.insert_text("\n")

    @kb.add("escape", "enter")
    def _run_now(event: KeyPressEvent) -> None:
        event.current_buffer.validate_and_handle()

    return kb


def make_session(state: ReplState, history_file: Path) -> PromptSession[str]:
    """The prompt: highlighting, completion, history file and the multi-line Enter rule."""
    history_file.parent.mkdir(parents=True, exist_ok=True)

    def toolbar() -> str:
        shown = "on" if state.show_sql else "off"
        return (
            f" target {state.target} · Proton {state.proton_version} · SQL {shown} · "
            "Tab completes · ; or blank line runs · \\help"
        )

    return PromptSession(
        message="srql> ",
        prompt_continuation=lambda width, line_number, wrap_count: "...> ".rjust(width),
        multiline=True,
        key_bindings=_key_bindings(),
        lexer=SRQLLexer(),
        completer=SRQLCompleter(),
        complete_while_typing=True,
        history=FileHistory(str(history_file)),
        style=REPL_STYLE,
        include_default_pygments_style=False,
        bottom_toolbar=toolbar,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srql repl", description="The SRQL REPL.")
    parser.add_argument("--target", choices=TARGETS, default="proton", help="SQL dialect shown")
    parser.add_argument("--proton-version", choices=PROTON_VERSIONS, default="3", help="Proton version")
    parser.add_argument("--history", help="history file (default $SRQL_HISTORY or ~/.srql_history)")
    parser.add_argument("--show-sql", action="store_true", help="print the compiled SQL of every query")
    parser.add_argument("--compile-only", action="store_true", help="never run queries, only show their SQL")
    parser.add_argument("--data-dir", type=Path, help="history: the chdb store in DIR/chdb (as 'srql demo "
                        "--data-dir DIR' writes it; default ~/.serviceradar/chdb)")
    parser.add_argument("--clickhouse-url", help="history: a ClickHouse server URL instead of chdb")
    parser.add_argument("--devices", type=int, default=50, help="simulated routers for STREAM queries")
    parser.add_argument("--speed", type=float, default=1.0, help="STREAM event time per wall time (default 1)")
    return parser


def make_runner(args: argparse.Namespace, console: Console) -> QueryRunner:
    """The runner the options ask for."""
    if args.compile_only:
        return CompileOnlyRunner(console)
    return QueryRunner(
        console,
        history_path=args.data_dir / "chdb" if args.data_dir else None,
        history_url=args.clickhouse_url,
        live_options={"devices": args.devices, "speed": args.speed},
    )


def main(argv: list[str] | None = None) -> int:
    """Run the REPL until ``\\quit`` or Ctrl-D. Returns the process exit code."""
    args = _parser().parse_args(argv)
    console = Console()
    state = ReplState(target=args.target, proton_version=args.proton_version, show_sql=args.show_sql)
    runner = make_runner(args, console)
    repl = Repl(console, runner, state)
    session = make_session(state, history_path(args.history))
    console.print("[bold]srql[/bold] — SRQL to SQL. \\help for commands, Ctrl-D to leave.")
    try:
        while True:
            try:
                text = session.prompt()
            except KeyboardInterrupt:
                continue  # Ctrl-C clears the line, as in a shell
            except EOFError:
                break
            if not repl.execute(text):
                break
    finally:
        runner.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
