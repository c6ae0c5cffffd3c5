"""SRQL diagnostics: one error type, pointing at the fault with a caret and suggesting a fix."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SRQLError(Exception):
    """Every failure of the compiler. ``line`` and ``column`` are 1-based; ``str(err)`` is the whole diagnostic.

    Attributes: ``message`` (one line, no position), ``query``, ``line``, ``column``, ``length`` (of the
    faulty span, for underlining), ``suggestion`` (a replacement for the faulty text, or None).
    """

    def __init__(
        self,
        message: str,
        query: str = "",
        line: int = 1,
        column: int = 1,
        *,
        length: int = 1,
        suggestion: str | None = None,
    ) -> None:
        self.message = message
        self.query = query
        self.line = max(1, line)
        self.column = max(1, column)
        self.length = max(1, length)
        self.suggestion = suggestion
        super().__init__(self.render())

    def render(self) -> str:
        """``line L, column C: message``, the query line, and a caret under the fault."""
        head = f"line {self.line}, column {self.column}: {self.message}"
        if self.suggestion and "did you mean" not in self.message:
            head += f"; did you mean {self.suggestion!r}?"
        lines = self.query.splitlines() or [""]
        src = lines[self.line - 1] if self.line <= len(lines) else ""
        caret = " " * (self.column - 1) + "^" * min(self.length, max(1, len(src) - self.column + 1))
        return f"{head}\n  {src}\n  {caret}"

    @classmethod
    def at(cls, message: str, query: str, offset: int, length: int = 1, suggestion: str | None = None) -> SRQLError:
        """An error at a character offset of ``query``."""
        offset = max(0, min(offset, len(query)))
        line = query.count("\n", 0, offset) + 1
        column = offset - (query.rfind("\n", 0, offset) + 1) + 1
        return cls(message, query, line, column, length=length, suggestion=suggestion)


def did_you_mean(word: str, candidates: Iterable[str], *, ignore_case: bool = False) -> str | None:
    """The closest candidate to ``word`` (difflib ratio >= 0.6), or None."""
    cands = list(candidates)
    if ignore_case:
        lowered = {c.lower(): c for c in cands}
        hit = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        return lowered[hit[0]] if hit else None
    hit = difflib.get_close_matches(word, cands, n=1, cutoff=0.6)
    return hit[0] if hit else None
