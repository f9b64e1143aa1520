"""Text normalisation: what every clean ``text`` goes through, and the stricter dedup key.

``normalize_text`` changes only what no reader would call content: mojibake, Unicode composition, line
endings, control and zero-width characters, runs of spaces and blank lines. Quotes, case, digits and
punctuation stay as written. ``dedup_tokens`` folds those too, and is used only for signatures.
"""

from __future__ import annotations

import html
import re
import unicodedata
from functools import lru_cache

# Bumped whenever the output of normalize_text or dedup_tokens changes, so an index never mixes versions.
NORMALIZATION_VERSION = 1

# Two-character sequences that UTF-8 read as cp1252/latin-1 produces (Ã©, â€™, Â , Ð¿ ...). ftfy is slow
# (~900 docs/s), so it runs only where this cheap check fires.
_MOJIBAKE = re.compile(
    "[ÂÃÄÅÆÇÐÑØÙâ][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u2122]"
)
_ENTITY = re.compile(r"&(?:#\d{2,7}|#x[0-9a-fA-F]{2,6}|[a-zA-Z]{2,8});")
_NEWLINES = re.compile(r"\r\n?|[\u2028\u2029\x85\x0b\x0c]")
# C0 controls except tab and newline, zero-width characters, BOM, bidi marks ...
_INVISIBLE = re.compile("[\x00-\x08\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# ... and C1 controls and the soft hyphen, which are removed only after mojibake repair: UTF-8 read as
# cp1252 leaves them inside damaged characters ("”" becomes "â€\x9d", "í" becomes "Ã\xad").
_LATE_INVISIBLE = re.compile("[\x80-\x84\x86-\x9f\u00ad]")


def repair_mojibake(text: str) -> str:
    """Undo UTF-8-read-as-cp1252 damage where a fast check sees its markers; otherwise return text as is."""
    if text.isascii() or not _MOJIBAKE.search(text):
        return text
    # fix_encoding, not fix_text: fix_text also straightens curly quotes and folds ligatures (content, not
    # damage), and it judges line by line, leaving a short damaged line such as "60,000â‚©" alone.
    import ftfy  # noqa: PLC0415 - 0.04 s to import; most runs meet no mojibake

    return ftfy.fix_encoding(text)


# The same two steps on ASCII text, as one bytes.translate: \r, \v and \f become newlines (after \r\n became
# one), the other C0 controls and DEL go.
_ASCII_NEWLINES = bytes(10 if c in (11, 12, 13) else c for c in range(256))
_ASCII_INVISIBLE = bytes(c for c in range(128) if _INVISIBLE.match(chr(c)))
# What str.split() calls whitespace and _visible leaves in place, besides the space and the newline.
_OTHER_SPACES = re.compile("[\t\xa0\u1680\u2000-\u200a\u202f\u205f\u3000]")


def _visible(text: str) -> str:
    if text.isascii():
        data = text.encode("ascii")
        if b"\r\n" in data:
            data = data.replace(b"\r\n", b"\n")
        return data.translate(_ASCII_NEWLINES, _ASCII_INVISIBLE).decode("ascii")
    return _INVISIBLE.sub("", _NEWLINES.sub("\n", text))


def normalize_text(text: str, *, unescape: bool = False) -> str:
    """Normalise text for output: mojibake, NFC, line endings, invisible characters, whitespace.

    Args:
        text: decoded text.
        unescape: also decode HTML entities (``&amp;`` ...), for text that came out of markup.

    Paragraphs (blank-line separated) and line breaks inside them are kept. Idempotent: where removing
    invisible characters or spacing brings damaged characters together ("Â\\tâ¡"), the repair runs again,
    at most twice more.
    """
    result = _normalize_once(text, unescape)
    for _ in range(2):
        if result.isascii() or not _MOJIBAKE.search(result):
            break
        again = _normalize_once(result, False)
        if again == result:
            break
        result = again
    return result


def _normalize_once(text: str, unescape: bool) -> str:
    # Invisible characters go first (they would hide mojibake and block NFC composition), and again
    # after the repairs, which can decode to them ("&#8203;", "â€‹" are zero-width spaces).
    text = _visible(text)
    if unescape and "&" in text and _ENTITY.search(text):
        text = _visible(html.unescape(text))
    if not text.isascii():
        repaired = repair_mojibake(text)
        if repaired is not text:
            text = _visible(repaired)
        text = _LATE_INVISIBLE.sub("", text)
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
    return _tidy_spacing(text)


def _tidy_spacing(text: str) -> str:
    """Single spaces inside lines, none at their ends, at most one blank line in a row, none at the ends."""
    if not (
        "  " in text
        or " \n" in text
        or "\n " in text
        or "\n\n\n" in text
        or (not text.isascii() or "\t" in text)
        and _OTHER_SPACES.search(text)
    ):
        return text.strip(" \n")  # already tidy inside: a few substring checks instead of a loop over lines
    # str.split() splits on exactly the whitespace _visible leaves (spaces, tabs, no-break and other Unicode
    # spaces).
    lines: list[str] = []
    for line in text.split("\n"):
        line = " ".join(line.split())
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip()


# Apostrophes of every style are dropped inside words ("don’t" and "don't" both give "dont"); double
# quotes and other punctuation fall away with the non-word characters.
_APOSTROPHE_CHARS = "'\u2018\u2019\u201a\u201b\u2032\u02bc"
_APOSTROPHES = re.compile(f"[{_APOSTROPHE_CHARS}]")
_NON_WORD = re.compile(r"[\W_]+")
# The fast path: typographic punctuation common in news text becomes a space, after which most articles
# in Latin script are pure ASCII, split with one bytes.translate (six times faster than the regex).
_COMMON_PUNCTUATION = "\u201c\u201d\u201e\u201f\u2013\u2014\u2015\u2026\u00ab\u00bb\u00a0\u2022\u00b7"
# ASCII letters and digits kept, other ASCII bytes a space (the dedup key's and title folding's tokens).
ASCII_SEPARATORS = bytes(c if chr(c).isalnum() or c >= 128 else 32 for c in range(256))


@lru_cache(maxsize=65536)
def _char_kind(char: str) -> str:
    """How the regex path treats a non-ASCII character, where the fast path can mimic it:

    "letter": kept as is (a word character, NFKC-stable, whose case-fold is its lower case and all word
    characters: not "ß" -> "ss", not "İ" -> "i" + combining dot); "separator": not a word character and
    NFKC-stable ("©", "€"); "other": anything else (the regex path runs).
    """
    if not unicodedata.is_normalized("NFKC", char):
        return "other"
    if char.isalnum():
        folded = char.casefold()
        return "letter" if folded == char.lower() and folded.isalnum() else "other"
    return "separator"


def dedup_tokens(text: str) -> list[str]:
    """Word tokens of the dedup key: NFKC, case-folded, apostrophes and punctuation dropped.

    Digits are unified to ASCII by NFKC but kept: two short reports that differ only in their figures
    are distinct articles, and folding digits would merge them.
    """
    return [token.decode("utf-8") for token in dedup_token_bytes(text)]


def dedup_token_bytes(text: str) -> list[bytes]:
    """:func:`dedup_tokens` as UTF-8 bytes (what the shingle hashes read).

    The fast path (one ``bytes.translate``, six times faster than the regex) takes text whose non-ASCII
    characters are all plain letters or plain separators (see :func:`_char_kind`), which is most text in
    Latin, Cyrillic or Greek script once apostrophes and typographic punctuation are dealt with; the rest
    goes through NFKC and the regex. Both paths give the same tokens (a property test checks it).
    """
    if text.isascii():
        return text.replace("'", "").lower().encode("ascii").translate(ASCII_SEPARATORS).split()
    for char in _APOSTROPHE_CHARS:
        if char in text:
            text = text.replace(char, "")
    for char in _COMMON_PUNCTUATION:
        if char in text:
            text = text.replace(char, " ")
    if not text.isascii():
        kinds = {char: _char_kind(char) for char in set(text) if char > "\x7f"}
        if "other" in kinds.values():
            if not unicodedata.is_normalized("NFKC", text):
                text = unicodedata.normalize("NFKC", text)
            tokens = _NON_WORD.sub(" ", _APOSTROPHES.sub("", text.casefold())).split()
            return [token.encode("utf-8") for token in tokens]
        for char, kind in kinds.items():
            if kind == "separator":
                text = text.replace(char, " ")
    return text.lower().encode("utf-8").translate(ASCII_SEPARATORS).split()
