"""Shared by the SRQL compiler tests: hypothesis mutations of a valid query."""

from __future__ import annotations

from hypothesis import strategies as st

from srql_compiler.keywords import KEYWORDS


def mutate(query: str, data: st.DataObject, insertable: str) -> str:
    """``query`` after 1-4 random edits: delete a character, insert one of ``insertable``, replace one with
    any character, or swap a word for an SRQL keyword."""
    chars = list(query)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["delete", "insert", "replace", "keyword"]))
        i = data.draw(st.integers(0, max(0, len(chars) - 1)))
        if op == "delete" and chars:
            del chars[i]
        elif op == "insert":
            chars.insert(i, data.draw(st.sampled_from(list(insertable))))
        elif op == "replace" and chars:
            chars[i] = data.draw(st.characters(codec="utf-8"))
        else:
            words = "".join(chars).split(" ")
            j = data.draw(st.integers(0, len(words) - 1))
            words[j] = data.draw(st.sampled_from(list(KEYWORDS)))
            chars = list(" ".join(words))
    return "".join(chars)
