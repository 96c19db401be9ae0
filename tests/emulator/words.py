"""Deterministic text arithmetic: the emulator's "tokens" are whitespace-separated words.

Tests compute expected usage and scores with the same simple rules, so nothing here may
depend on a tokenizer, randomness or the clock.
"""

from __future__ import annotations

import re

__all__ = ["count_words", "overlap_score", "split_keep_spaces"]

_PIECE = re.compile(r"\S+\s*")
# Each CJK ideograph is its own token; other runs of letters/digits form one token.
_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]|[^\W_\u3400-\u4dbf\u4e00-\u9fff]+")


def count_words(text: str) -> int:
    return len(text.split())


def split_keep_spaces(text: str) -> list[str]:
    """One piece per word, each keeping its trailing spaces, so "".join(pieces) == text."""
    pieces = _PIECE.findall(text)
    lead = text[: len(text) - len(text.lstrip())]
    if not pieces:
        return [text] if text else []
    pieces[0] = lead + pieces[0]
    return pieces


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower()))


def overlap_score(query: str, document: str) -> float:
    """Share of the query's distinct tokens that also occur in the document, in [0, 1]."""
    wanted = _tokens(query)
    if not wanted:
        return 0.0
    return round(len(wanted & _tokens(document)) / len(wanted), 6)
