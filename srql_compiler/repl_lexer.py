"""Tokens of an SRQL line for the REPL: syntax highlighting and the "is this statement finished?" test.

A small regex lexer written here rather than a Pygments lexer: Pygments is installed only as a
dependency of rich, not of prompt_toolkit, and SRQL's surface (keywords, quoted strings, numbers,
durations like ``5m``, identifiers) is small enough that one regex covers it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from prompt_toolkit.document import Document
from prompt_toolkit.lexers import Lexer
from prompt_toolkit.styles import Style

from srql_compiler.keywords import AGGREGATES, KEYWORDS, SCALAR_FUNCTIONS
from streams.catalog import CATALOG

# Token classes, also the prompt_toolkit style class names ("class:srql.keyword", ...).
KEYWORD = "keyword"
STRING = "string"
NUMBER = "number"
DURATION = "duration"
FUNCTION = "function"
ENTITY = "entity"
IDENTIFIER = "identifier"
OPERATOR = "operator"
PUNCTUATION = "punctuation"
META = "meta"
WHITESPACE = "whitespace"
COMMENT = "comment"
ERROR = "error"

_TOKEN_RE = re.compile(
    r"""
    (?P<whitespace>\s+)
  | (?P<string>'(?:[^']|'')*'?)                                  # '' escapes a quote; may be unterminated
  | (?P<comment>--[^\n]*)                                        # -- to the end of the line
  | (?P<duration>\d+(?:ms|us|ns|s|m|h|d|w)(?![A-Za-z0-9_]))      # 100ms 5s 1m 2h 1d 1w
  | (?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![A-Za-z_]))
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<identifier>`[^`]*`?|"[^"]*"?)                            # quoted identifiers
  | (?P<operator><=|>=|!=|<>|==|[=<>+\-*/%])
  | (?P<punctuation>[(),.;])
  | (?P<error>.)
    """,
    re.VERBOSE,
)
_META_RE = re.compile(r"^(\s*)(\\\w*)(.*)$", re.DOTALL)

_KEYWORDS = frozenset(KEYWORDS)
_FUNCTIONS = frozenset(AGGREGATES + SCALAR_FUNCTIONS)
_ENTITY_NAMES = frozenset(CATALOG.all_names())

# A single line that ends in one of these is waiting for more: Enter adds a new line instead of running it.
CONTINUATION_WORDS = frozenset(
    {
        "SHOW", "FIND", "COUNT", "STREAM", "SELECT", "FROM", "WHERE", "GROUP", "BY", "WINDOW", "HAVING",
        "ORDER", "LIMIT", "JOIN", "ON", "WITHIN", "AS", "EMIT", "SINCE", "AND", "OR", "NOT", "IN", "IS",
        "LIKE", "CONTAINS", "BETWEEN", "HOP", "DELAY", "LAST", "INTERVAL", "PERIODIC",
    }
)  # fmt: skip


def _classify_word(word: str, rest: str) -> str:
    if word.upper() in _KEYWORDS and not (word.lower() in _FUNCTIONS and rest.lstrip().startswith("(")):
        return KEYWORD
    if word.lower() in _FUNCTIONS and rest.lstrip().startswith("("):
        return FUNCTION
    if word in _ENTITY_NAMES:
        return ENTITY
    return IDENTIFIER


def tokenize(line: str) -> list[tuple[str, str]]:
    """Split one line into ``(token_class, text)`` pairs; the texts concatenate back to ``line``."""
    meta = _META_RE.match(line)
    if meta:
        lead, command, args = meta.groups()
        head = [(WHITESPACE, lead)] if lead else []
        return [*head, (META, command), *tokenize(args)] if args else [*head, (META, command)]
    tokens: list[tuple[str, str]] = []
    for m in _TOKEN_RE.finditer(line):
        kind = m.lastgroup or ERROR
        text = m.group()
        if kind == "word":
            kind = _classify_word(text, line[m.end():])
        tokens.append((kind, text))
    return tokens


def statement_is_complete(text: str) -> bool:
    """Whether Enter should run the buffer (the REPL's multi-line rule; docs/repl.md states it).

    - a meta-command (``\\target ...``) runs at once;
    - a statement ending with ``;`` runs;
    - Enter on a blank line runs whatever was typed above it;
    - a buffer of one line runs unless it is visibly unfinished: an open string or parenthesis, or a
      last token such as ``WHERE``, ``AND``, ``BY``, ``=`` or ``,`` that needs something after it;
    - once a statement spans several lines, only ``;`` or a blank line runs it.
    """
    stripped = text.strip()
    if not stripped or stripped.startswith("\\"):
        return True
    lines = text.split("\n")
    if len(lines) > 1 and not lines[-1].strip():
        return True
    significant = [(k, t) for k, t in tokenize(stripped) if k not in (WHITESPACE, COMMENT)]
    if not significant:
        return True
    if _open_string(significant):
        return False
    if significant[-1] == (PUNCTUATION, ";"):
        return True
    if len(lines) > 1:
        return False
    return _single_line_finished(significant)


def _open_string(tokens: list[tuple[str, str]]) -> bool:
    kind, text = tokens[-1]
    return kind == STRING and (len(text) < 2 or not text.endswith("'") or _ends_in_escape(text))


def _ends_in_escape(text: str) -> bool:
    # 'it''' is closed; 'it'' is open: count the quotes after the opening one.
    body = text[1:]
    trailing = len(body) - len(body.rstrip("'"))
    return trailing % 2 == 0


def _single_line_finished(tokens: list[tuple[str, str]]) -> bool:
    depth = sum(1 if t == "(" else -1 if t == ")" else 0 for k, t in tokens if k == PUNCTUATION)
    if depth > 0:
        return False
    kind, text = tokens[-1]
    if kind == KEYWORD and text.upper() in CONTINUATION_WORDS:
        return False
    return not (kind == OPERATOR or text in (",", "(", "."))


class SRQLLexer(Lexer):
    """prompt_toolkit lexer: every token gets the style class ``class:srql.<token_class>``."""

    def lex_document(self, document: Document) -> Callable[[int], list[tuple[str, str]]]:
        lines = document.lines

        def get_line(lineno: int) -> list[tuple[str, str]]:
            if lineno >= len(lines):
                return []
            return [(f"class:srql.{kind}", text) for kind, text in _tokenize_cached(lines[lineno])]

        return get_line


@lru_cache(maxsize=256)
def _tokenize_cached(line: str) -> tuple[tuple[str, str], ...]:
    return tuple(tokenize(line))


REPL_STYLE = Style.from_dict(
    {
        "srql.keyword": "bold ansiblue",
        "srql.string": "ansigreen",
        "srql.number": "ansimagenta",
        "srql.duration": "ansicyan",
        "srql.function": "ansiyellow",
        "srql.entity": "bold ansibrightcyan",
        "srql.operator": "ansibrightblack",
        "srql.meta": "bold ansired",
        "srql.comment": "italic ansibrightblack",
        "srql.error": "bg:ansired ansiwhite",
        "prompt": "bold",
    }
)
