"""Tab completion for the SRQL REPL: keywords, entities, the fields of the entities in the query, measures.

Everything offered comes from :mod:`srql_compiler.keywords` and :data:`streams.catalog.CATALOG`, so a
field added to the catalog is completable without touching this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from srql_compiler.keywords import AGGREGATES, KEYWORDS, SCALAR_FUNCTIONS, STATEMENTS
from srql_compiler.repl_lexer import ENTITY, IDENTIFIER, KEYWORD, STRING, WHITESPACE, tokenize
from streams.catalog import CATALOG, Catalog, Entity

TARGETS = ("proton", "clickhouse", "duckdb")
PROTON_VERSIONS = ("1.6", "3")

# Meta-commands with a one-line description (shown as completion metadata and by \help).
META_COMMANDS: dict[str, str] = {
    "\\target": "set the SQL dialect shown: proton | clickhouse | duckdb",
    "\\version": "set the Proton version EMIT is spelled for: 1.6 | 3",
    "\\sql": "toggle showing the compiled SQL; '\\sql QUERY' shows a query's SQL without running it",
    "\\explain": "show the logical plan of QUERY, or of the last query, as a tree",
    "\\describe": "list the entities, or the fields of one entity",
    "\\help": "this help",
    "\\quit": "leave the REPL (also Ctrl-D)",
}

# After these keywords an entity name comes next.
_ENTITY_FOLLOWS = frozenset({"SHOW", "FIND", "COUNT", "STREAM", "JOIN", "FROM"})
# Numeric aggregates only make sense over numeric fields; the others accept any field.
_NUMERIC_AGGREGATES = frozenset({"sum", "avg", "p50", "p90", "p95", "p99"})
_TIME_RANGE_STARTS = ("TODAY", "YESTERDAY", "LAST", "BETWEEN")
_WORD_BEFORE_CURSOR = re.compile(r"([A-Za-z_][A-Za-z0-9_]*\.)?([A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class QueryContext:
    """The query so far: the entities it names (by name or alias used) and the keyword before the cursor."""

    entities: dict[str, list[Entity]]  # name/alias as written in the query -> the catalog entities it may be
    previous_keyword: str | None


def query_context(text_before: str, full_text: str, catalog: Catalog = CATALOG) -> QueryContext:
    """Entities named anywhere in ``full_text`` (after STREAM/SHOW/JOIN/FROM, plus ``AS alias``)."""
    entities: dict[str, list[Entity]] = {}
    words = [(k, t) for k, t in tokenize(full_text) if k not in (WHITESPACE, STRING)]
    for i, (kind, text) in enumerate(words):
        prev = words[i - 1][1].upper() if i else ""
        if kind in (ENTITY, IDENTIFIER) and prev in _ENTITY_FOLLOWS and catalog.candidates(text):
            found = catalog.candidates(text)
            entities[text] = found
            if i + 2 < len(words) and words[i + 1][1].upper() == "AS":
                entities[words[i + 2][1]] = found
    before = [(k, t) for k, t in tokenize(text_before) if k != WHITESPACE]
    if before and _WORD_BEFORE_CURSOR.search(text_before).group(2):
        before = before[:-1]  # the word being typed is not "before" the cursor
    previous = before[-1][1].upper() if before and before[-1][0] == KEYWORD else None
    return QueryContext(entities, previous)


class SRQLCompleter(Completer):
    """Completes meta-commands, keywords, entity names/aliases, fields, functions and measure names."""

    def __init__(self, catalog: Catalog = CATALOG) -> None:
        self.catalog = catalog

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterator[Completion]:
        before = document.text_before_cursor
        if before.lstrip().startswith("\\"):
            yield from self._meta_completions(before.lstrip())
            return
        if _inside_string(before):
            return
        match = _WORD_BEFORE_CURSOR.search(before)
        qualifier = (match.group(1) or "")[:-1] if match else ""
        prefix = (match.group(2) or "") if match else ""
        ctx = query_context(before, document.text, self.catalog)
        if qualifier:
            for entity in ctx.entities.get(qualifier) or self.catalog.candidates(qualifier):
                yield from _field_completions(entity, prefix)
            return
        at_start = not before[: len(before) - len(prefix)].strip()
        yield from _dedupe(self._word_completions(ctx, prefix, at_start=at_start))

    def _word_completions(self, ctx: QueryContext, prefix: str, *, at_start: bool) -> Iterator[Completion]:
        if at_start:
            yield from _keyword_completions(STATEMENTS, prefix)
            return
        if ctx.previous_keyword == "FROM" and ctx.entities:
            # SHOW <entity> FROM ... is a time range; STREAM <projection> FROM names the entity.
            yield from _keyword_completions(_TIME_RANGE_STARTS, prefix)
            return
        if ctx.previous_keyword in _ENTITY_FOLLOWS:
            yield from self._entity_completions(prefix)
            return
        for entities in ctx.entities.values():
            for entity in entities:
                yield from _field_completions(entity, prefix)
        if prefix:
            for entities in ctx.entities.values():
                for entity in entities:
                    yield from _measure_completions(entity, prefix)
            yield from _function_completions(prefix)
        yield from _keyword_completions(KEYWORDS, prefix)

    def _entity_completions(self, prefix: str) -> Iterator[Completion]:
        for name in self.catalog.all_names():
            if name.startswith(prefix):
                meanings = ", ".join(e.name for e in self.catalog.candidates(name))
                yield Completion(name, -len(prefix), display_meta=f"entity: {meanings}")

    def _meta_completions(self, text: str) -> Iterator[Completion]:
        command, _, arg = text.partition(" ")
        if not _:
            for name, doc in META_COMMANDS.items():
                if name.startswith(command):
                    yield Completion(name, -len(command), display_meta=doc)
            return
        choices: Iterable[str] = ()
        if command == "\\target":
            choices = TARGETS
        elif command == "\\version":
            choices = PROTON_VERSIONS
        elif command == "\\describe":
            choices = self.catalog.all_names()
        word = arg.strip()
        for choice in choices:
            if choice.startswith(word):
                yield Completion(choice, -len(word))


def _inside_string(text: str) -> bool:
    # '' is an escaped quote, so an odd count of quotes means an open string.
    return text.count("'") % 2 == 1


def _keyword_completions(words: Iterable[str], prefix: str) -> Iterator[Completion]:
    lower = prefix.islower()  # keywords are case-insensitive: answer in the case the user is typing
    for word in words:
        if word.startswith(prefix.upper()):
            yield Completion(word.lower() if lower else word, -len(prefix), display_meta="keyword")


def _field_completions(entity: Entity, prefix: str) -> Iterator[Completion]:
    for f in entity.fields:
        for name in (f.name, *f.aliases):
            if name.startswith(prefix):
                meta = f"{entity.name}.{f.name} {f.type}" + (f" — {f.doc}" if f.doc else "")
                yield Completion(name, -len(prefix), display_meta=meta)


def _measure_completions(entity: Entity, prefix: str) -> Iterator[Completion]:
    for m in entity.measures:
        if m.name.startswith(prefix):
            yield Completion(m.name, -len(prefix), display_meta=f"measure of {entity.name}: {m.doc}")
    for agg in AGGREGATES:
        if not (agg + "_").startswith(prefix[: len(agg) + 1]):
            continue
        for f in entity.fields:
            if agg in _NUMERIC_AGGREGATES and not f.type.is_numeric:
                continue
            name = f"{agg}_{f.name}"
            if name.startswith(prefix):
                yield Completion(name, -len(prefix), display_meta=f"measure {agg}({f.name})")


def _function_completions(prefix: str) -> Iterator[Completion]:
    for fn in AGGREGATES + SCALAR_FUNCTIONS:
        if fn.startswith(prefix.lower()):
            yield Completion(fn + "(", -len(prefix), display=fn + "()", display_meta="function")


def _dedupe(completions: Iterable[Completion]) -> Iterator[Completion]:
    seen: set[str] = set()
    for c in completions:
        if c.text not in seen:
            seen.add(c.text)
            yield c
