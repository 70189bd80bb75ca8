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
6. stop words and lettered size tokens from conf are removed (a lambda filter whose ``IN`` list Spark
   turns into one hash set), and the array made distinct (a title counts a word once);
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
# Step 7: tokens dropped as numbers or sizes; fractions like 3/4 are kept. As a rule on one token
# (the specification, used by the DuckDB baseline) ...
DROP_TOKEN_RE = (
    r"^(?:"
    r"[0-9][0-9.,]*(?:cm|mm|in|inch|inches|ft|m|x|xl|xxl|w|l|t|y|yr|yrs|pcs|pc|pack|s)?"
    r"|(?:us|uk|eu|au|size|sz)[0-9][0-9.]*"
    r"|[0-9]+(?:[-/][0-9a-z]+)+"
    r")$"
)
KEEP_FRACTION_RE = r"^[1-9]/[1-9]$"
# ... and, for Spark, the same rule folded into the token extraction itself: one regular expression
# whose first alternative matches a whole droppable token and whose second (group 1) matches any
# other token. Scanning left to right, every attempt starts at a token start, so no lookbehind is
# needed; a dropped token yields "" (removed with the stop words). One compiled pass per title
# instead of a per-token lambda filter, which Spark interprets row by row (about 3x slower).
_TOKEN_END = r"(?![\p{L}\p{N}])(?![-/][\p{L}\p{N}])"


def extract_tokens_re(min_token_length: int) -> str:
    """The one-pass pattern: droppable tokens (step 7) match with group 1 unset, kept tokens as group 1."""
    drop = [
        r"[0-9][0-9.,]*(?:cm|mm|in|inch|inches|ft|m|x|xl|xxl|w|l|t|y|yr|yrs|pcs|pc|pack|s)?",
        r"(?:us|uk|eu|au|size|sz)[0-9][0-9.]*",
        rf"(?![1-9]/[1-9]{_TOKEN_END})[0-9]+(?:[-/][0-9a-z]+)+",
    ]
    if min_token_length > 1:
        drop.append(rf"[\p{{L}}\p{{N}}]{{1,{min_token_length - 1}}}")
    return "(?:" + "|".join(drop) + ")" + _TOKEN_END + "|(" + TOKEN_RE + ")"


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


def _when_contains(text: Column, needles: str, expr: Column) -> Column:
    """``expr`` where ``text`` holds one of the characters in ``needles``, else ``text`` (skips a regex pass).

    ``contains``, not ``instr``: ``instr`` walks the string character by character with a call per
    position, ``contains`` compares bytes (measured on the 2M-title job: ``instr`` was 7 % of the
    JVM's samples, in a Java Flight Recorder profile).
    """
    cond = None
    for ch in needles:
        c = text.contains(ch)
        cond = c if cond is None else cond | c
    return F.when(cond, expr).otherwise(text)


def normalise_title(title: Column) -> Column:
    """Steps 1 to 4: a lower-case, ASCII-folded title with HTML and apostrophes removed.

    Each costly step runs only on titles that need it: the Unicode folding on titles with a
    non-ASCII character (character count != byte count), the HTML and apostrophe passes on titles
    holding ``&``, ``<`` or ``'``.
    """
    src, dst = translation_table()
    lowered = F.lower(title)
    folded = F.translate(lowered, src, dst)
    expanded = folded
    for old, new in _MULTI_CHAR.items():
        expanded = F.replace(expanded, F.lit(old), F.lit(new))
    # each replace scans the title with a call per byte position: run them only on the few titles that need them.
    # The test is on `lowered` (evaluated once for the first condition): the translation neither makes nor removes
    # these characters, and a test on `folded` would evaluate the translation again for each character tested
    # (Spark shares a subexpression of a CASE only when it is in the first condition or in every branch)
    needs_expanding = None
    for ch in _MULTI_CHAR:
        c = lowered.contains(ch)
        needs_expanding = c if needs_expanding is None else needs_expanding | c
    text = (
        F.when(F.length(lowered) == F.octet_length(lowered), lowered).when(needs_expanding, expanded).otherwise(folded)
    )
    text = _when_contains(text, "&", F.regexp_replace(text, APOSTROPHE_ENTITY_RE, "'"))
    text = _when_contains(text, "&<", F.regexp_replace(text, HTML_NOISE_RE, " "))
    return _when_contains(text, "'", F.regexp_replace(text, APOSTROPHE_RE, ""))


def title_tokens(title: Column, conf: LabelsConfig) -> Column:
    """The distinct label words of a title, in order of first appearance (``array<string>``).

    A null title gives an empty array.

    Args:
        title: A string column.
        conf: ``stop_words``, ``size_tokens`` and ``min_token_length`` are used.
    """
    text = normalise_title(F.coalesce(title, F.lit("")))
    raw = F.regexp_extract_all(text, F.lit(extract_tokens_re(conf.min_token_length)), F.lit(1))
    # a dropped token comes back as "" (its group 1 did not take part): removed with the stop words. A filter
    # against a literal IN list (Spark makes it one hash set, built once) and then distinct, not array_except
    # against an array literal, which hashes every stop word again for every title (measured: 35 % less CPU for
    # this step, the same arrays; benchmarks/bench_labels.py)
    removed = sorted(set(conf.stop_words) | set(conf.size_tokens) | {""})
    return F.array_distinct(F.filter(raw, lambda token: ~token.isin(removed)))
