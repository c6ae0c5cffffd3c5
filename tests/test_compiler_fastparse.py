"""The lean LALR driver (``parser._FastLALR``) builds the same tree as lark's own parser, or gives up on
exactly the inputs lark rejects (lark then reports the error)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from srql_helpers import mutate

from srql_compiler import parser
from srql_compiler.examples import SRQL_MD_EXAMPLES
from srql_compiler.keywords import KEYWORDS

_TESTS = Path(__file__).parent
_QUOTED = re.compile(r"\"((?:SHOW|STREAM|COUNT|FIND|SELECT)\b[^\"\n]{3,})\"", re.IGNORECASE)


def _corpus() -> list[str]:
    golden = json.loads((_TESTS / "data" / "compile_golden.json").read_text())
    found = set(golden) | set(SRQL_MD_EXAMPLES)
    for path in _TESTS.glob("test_*.py"):
        if path.name.startswith(("test_compiler", "test_repl", "test_srql", "test_proton", "test_engine")):
            found.update(_QUOTED.findall(path.read_text()))
    return sorted(found)


CORPUS = _corpus()


def _same(query: str) -> None:
    fast = parser._fast_parse(query)
    try:
        slow = parser._lark().parse(query)
    except Exception:
        assert fast is None, query
        return
    assert fast is not None, query
    assert fast == slow and repr(fast) == repr(slow), query


def test_corpus_is_large() -> None:
    assert len(CORPUS) > 60


@pytest.mark.parametrize("query", CORPUS)
def test_same_tree_as_lark(query: str) -> None:
    _same(query)
    _same(query.lower())
    _same(f"  -- a comment\n{query} ;\n")


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(CORPUS), st.data())
def test_mutations_agree_with_lark(query: str, data: st.DataObject) -> None:
    _same(mutate(query, data, "()',=<>*. 0a_;`\"-\n"))


ALPHABET = st.sampled_from([*"abcdefghijklmnopqrstuvwxyz_0123456789 '\"`()*,.=<>!-+/%;\n\t", *KEYWORDS])


@settings(max_examples=300, deadline=None)
@given(st.lists(ALPHABET, max_size=25).map(" ".join))
def test_token_soup_agrees_with_lark(text: str) -> None:
    _same(text)


def test_fresh_and_cached_grammars_drive_alike() -> None:
    """The first process on a machine builds the LALR tables (lark then names rules with Tokens); later
    ones load them from lark's cache (plain str). The lean driver must accept the corpus on both."""
    fresh = parser._FastLALR(parser.build_lark(cache=False))
    cached = parser._FastLALR(parser.build_lark(cache=True))
    accepted = 0
    for query in CORPUS:
        try:
            expected = parser._lark().parse(query)
        except Exception:
            continue  # a template or a deliberately broken query from the tests' text
        accepted += 1
        assert fresh.parse(query) == expected, query
        assert cached.parse(query) == expected, query
    assert accepted > 60
