"""The emulator's search index: chunking and BM25, in the standard library (one source of truth for both).

:func:`chunk_text` cuts a document into chunks of at most :data:`CHUNK_WORDS` words, consecutive
chunks sharing :data:`CHUNK_OVERLAP` words (Cloudflare chunks by tokens, 256 with 10 % overlap by
default: a word here stands for a token). Each chunk is an exact slice of the text. :func:`tokenize`
lower-cases and splits on anything that is not a letter or digit. :func:`bm25` scores chunks for a
query with Okapi BM25 (``k1 = 1.2``, ``b = 0.75``, Lucene's always-positive idf
``ln(1 + (N - n + 0.5) / (n + 0.5))``, each distinct query term once), over the chunks it is given:
the collection statistics are those of the chunks searched.

The emulator answers ``keyword``, ``vector`` and ``hybrid`` searches all with BM25: it has no
embedding model, and lexical scores are deterministic, which tests need.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

__all__ = ["BM25_B", "BM25_K1", "CHUNK_OVERLAP", "CHUNK_WORDS", "bm25", "chunk_text", "tokenize"]

CHUNK_WORDS = 200
CHUNK_OVERLAP = 20
BM25_K1 = 1.2
BM25_B = 0.75

_WORD = re.compile(r"\S+")
_TOKEN = re.compile(r"[^\W_]+")


@lru_cache(maxsize=4096)
def chunk_text(text: str, words: int = CHUNK_WORDS, overlap: int = CHUNK_OVERLAP) -> tuple[str, ...]:
    """
    ``text`` cut into chunks of at most ``words`` words, each sharing ``overlap`` words with the one before.

    A text without words is no chunk; a short text is one chunk (itself, stripped).

    :param words: Words per chunk (>= 1).
    :param overlap: Words shared by consecutive chunks (0 <= overlap < words).
    """
    if words < 1 or not 0 <= overlap < words:
        raise ValueError(f"need words >= 1 and 0 <= overlap < words, got words={words}, overlap={overlap}")
    spans = [match.span() for match in _WORD.finditer(text)]
    chunks: list[str] = []
    start = 0
    while start < len(spans):
        end = min(start + words, len(spans))
        chunks.append(text[spans[start][0] : spans[end - 1][1]])
        if end == len(spans):
            break
        start = end - overlap
    return tuple(chunks)


@lru_cache(maxsize=8192)
def tokenize(text: str) -> tuple[str, ...]:
    """The text's terms: runs of letters and digits, lower-cased."""
    return tuple(token.lower() for token in _TOKEN.findall(text))


def bm25(query: str, chunks: Sequence[str], *, k1: float = BM25_K1, b: float = BM25_B) -> list[float]:
    """
    The BM25 score of each chunk for ``query`` (0.0 for a chunk holding no query term).

    :param query: The query text (tokenised with :func:`tokenize`).
    :param chunks: The chunks searched (also the collection the statistics come from).
    """
    terms = list(dict.fromkeys(tokenize(query)))
    docs = [tokenize(chunk) for chunk in chunks]
    if not docs or not terms:
        return [0.0] * len(docs)
    average = sum(len(doc) for doc in docs) / len(docs) or 1.0
    frequencies = [Counter(doc) for doc in docs]
    holding = {term: sum(1 for counts in frequencies if term in counts) for term in terms}
    idf = {term: math.log(1 + (len(docs) - n + 0.5) / (n + 0.5)) for term, n in holding.items()}
    scores = []
    for doc, counts in zip(docs, frequencies, strict=True):
        norm = k1 * (1 - b + b * len(doc) / average)
        scores.append(sum(idf[t] * counts[t] * (k1 + 1) / (counts[t] + norm) for t in terms if t in counts))
    return scores
