"""Title tokenisation with Spark's built-in column functions (no Python UDF).

The steps, in order, each a JVM expression:

1. lower case;
2. Unicode normalisation by a translation table built once here: accented Latin letters to ASCII
   (NFKD with the marks dropped), curly quotes and primes to ``'``/``"``, the dash family to ``-``,
   exotic spaces to a space, full-width ASCII to ASCII; ``ß``, ``æ``, ``œ`` and the ``ﬁ``/``ﬂ``
   ligatures expand to two letters;
3. HTML: tags and character entities (named and numeric) become a space, apostrophe entities ``'``;
4. possessive ``'s`` and other apostrophes are dropped (``women's`` -> ``women``);
5. tokens are runs of letters and digits, joined by inner ``-`` or ``/`` so that ``off-the-shoulder``,
   ``a-line`` and ``3/4`` stay whole;
6. stop words and lettered size tokens from conf are removed, and the array made distinct (a title
   counts a word once);
7. numbers, numbers with a unit or size suffix (``12``, ``2xl``, ``32w``, ``10cm``), size ranges
   (``8-10``, ``10/12``), prefixed sizes (``us8``) and tokens shorter than ``min_token_length`` are
   dropped; a single-digit fraction (``3/4``, ``1/2``) is a sleeve length and is kept.

The regular expressions are plain strings so that the benchmark's single-process baseline (DuckDB,
RE2) applies the very same rules.
"""

from __future__ import annotations

import unicodedata
from functools import lru_cache

from pyspark.sql import Column
from pyspark.sql import functions as F

from softlines_attr.config import LabelsConfig

# Step 3: HTML tags and entities (after lower case).
APOSTROPHE_ENTITY_RE = r"&(?:#0*39|#x0*27|apos|rsquo|lsquo|#8217|#8216);"
HTML_NOISE_RE = r"<[^<>]{0,200}>|&(?:#[0-9]{1,7}|#x[0-9a-f]{1,6}|[a-z]{2,8}[0-9]{0,2});"
# Step 4: possessives, then any other apostrophe.
APOSTROPHE_RE = r"'s\b|'"
# Step 5: a token.
TOKEN_RE = r"[\p{L}\p{N}]+(?:[-/][\p{L}\p{N}]+)*"
# Step 7: tokens dropped as numbers or sizes; fractions like 3/4 are kept.
DROP_TOKEN_RE = (
    r"^(?:"
    r"[0-9][0-9.,]*(?:cm|mm|in|inch|inches|ft|m|x|xl|xxl|w|l|t|y|yr|yrs|pcs|pc|pack|s)?"
    r"|(?:us|uk|eu|au|size|sz)[0-9][0-9.]*"
    r"|[0-9]+(?:[-/][0-9a-z]+)+"
    r")$"
)
KEEP_FRACTION_RE = r"^[1-9]/[1-9]$"

_MULTI_CHAR = {"ß": "ss", "æ": "ae", "œ": "oe", "ﬁ": "fi", "ﬂ": "fl", "ĳ": "ij"}


@lru_cache(maxsize=1)
def translation_table() -> tuple[str, str]:
    """The ``(from, to)`` strings of the one-to-one character translation of step 2."""
    src: list[str] = []
    dst: list[str] = []

    def add(chars: str, to: str) -> None:
        for ch in chars:
            if ch not in src:
                src.append(ch)
                dst.append(to)

    add("\u2018\u2019\u201a\u201b\u2032\u02bc\u00b4\u0060\uff07", "'")
    add("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb\uff02", '"')
    add("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d", "-")
    add("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000\t\r\n", " ")
    add("\u2044\u2215", "/")
    for code in range(0xFF01, 0xFF5F):  # full-width ASCII
        ch = chr(code)
        if ch not in src:
            add(ch, chr(code - 0xFEE0).lower())
    for code in range(0x00C0, 0x0250):  # Latin-1 Supplement, Latin Extended-A/B
        ch = chr(code)
        if ch in _MULTI_CHAR or ch.upper() in _MULTI_CHAR:
            continue
        base = "".join(c for c in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(c)).lower()
        if len(base) == 1 and base.isascii() and base.isalpha():
            add(ch, base)
    return "".join(src), "".join(dst)


def normalise_title(title: Column) -> Column:
    """Steps 1 to 4: a lower-case, ASCII-folded title with HTML and apostrophes removed."""
    src, dst = translation_table()
    text = F.translate(F.lower(title), src, dst)
    for old, new in _MULTI_CHAR.items():
        text = F.replace(text, F.lit(old), F.lit(new))
    text = F.regexp_replace(text, APOSTROPHE_ENTITY_RE, "'")
    text = F.regexp_replace(text, HTML_NOISE_RE, " ")
    return F.regexp_replace(text, APOSTROPHE_RE, "")


def title_tokens(title: Column, conf: LabelsConfig) -> Column:
    """The distinct label words of a title, in order of first appearance (``array<string>``).

    A null title gives an empty array.

    Args:
        title: A string column.
        conf: ``stop_words``, ``size_tokens`` and ``min_token_length`` are used.
    """
    raw = F.regexp_extract_all(normalise_title(F.coalesce(title, F.lit(""))), F.lit(TOKEN_RE), F.lit(0))
    removed = sorted(set(conf.stop_words) | set(conf.size_tokens))
    kept = F.array_except(raw, F.array(*[F.lit(w) for w in removed]).cast("array<string>"))
    min_len = conf.min_token_length
    return F.filter(
        kept,
        lambda t: (F.length(t) >= min_len) & (~t.rlike(DROP_TOKEN_RE) | t.rlike(KEEP_FRACTION_RE)),
    )
