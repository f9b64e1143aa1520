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

import numpy as np

# Bumped whenever the output of normalize_text or dedup_tokens changes, so an index never mixes versions.
NORMALIZATION_VERSION = 2  # 2: zero-width (non-)joiners kept in the text, dropped in the dedup key

# Two-character sequences that UTF-8 read as cp1252/latin-1 produces (Ã©, â€™, Â , Ð¿ ...). ftfy is slow
# (~900 docs/s), so it runs only where this cheap check fires.
_MOJIBAKE_LEAD = "[ÂÃÄÅÆÇÐÑØÙâ]"
_MOJIBAKE_TRAIL = "[\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013-\u2122]"
_MOJIBAKE = re.compile(_MOJIBAKE_LEAD + _MOJIBAKE_TRAIL)
_ENTITY = re.compile(r"&(?:#\d{2,7}|#x[0-9a-fA-F]{2,6}|[a-zA-Z]{2,8});")
_NEWLINE_CHARS = "\r\x0b\x0c\x85\u2028\u2029"
_NEWLINES = re.compile(f"\r\n?|[{_NEWLINE_CHARS}]")
# C0 controls except tab and newline, the zero-width space, BOM, bidi marks ... Not the zero-width
# non-joiner and joiner (U+200C, U+200D): they carry meaning in Persian and Indic scripts ("می‌خواهم") and
# in emoji sequences (🏳️‍🌈).
_INVISIBLE_CHARS = "\x00-\x08\x0e-\x1f\x7f\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\ufeff"
_INVISIBLE = re.compile(f"[{_INVISIBLE_CHARS}]")
# ... and C1 controls and the soft hyphen, which are removed only after mojibake repair: UTF-8 read as
# cp1252 leaves them inside damaged characters ("”" becomes "â€\x9d", "í" becomes "Ã\xad").
_LATE_INVISIBLE_CHARS = "\x80-\x84\x86-\x9f\u00ad"
_LATE_INVISIBLE = re.compile(f"[{_LATE_INVISIBLE_CHARS}]")
# What str.split() calls whitespace and _visible leaves in place, besides the space and the newline.
_OTHER_SPACE_CHARS = "\t\xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
_OTHER_SPACES = re.compile(f"[{_OTHER_SPACE_CHARS}]")
# Any character that one of the regexes above would change: most text holds none, and one search for them
# stands in for five passes over the text.
_UNTIDY = re.compile(f"[{_NEWLINE_CHARS}{_INVISIBLE_CHARS}{_LATE_INVISIBLE_CHARS}{_OTHER_SPACE_CHARS}]")


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
    result, suspect = _normalize_once(text, unescape)
    for _ in range(2):
        if not suspect or result.isascii() or not _MOJIBAKE.search(result):
            break
        again, suspect = _normalize_once(result, False)
        if again == result:
            break
        result = again
    return result


def _normalize_once(text: str, unescape: bool) -> tuple[str, bool]:
    """One round of normalisation, and whether it removed or composed characters (which can bring the
    two halves of a damaged character together: only then can a second round find more to repair)."""
    if text.isascii():
        text = _visible(text)
        if unescape and "&" in text and _ENTITY.search(text):
            text = _visible(html.unescape(text))
        return _tidy_spacing(text), False
    entities = unescape and "&" in text and _ENTITY.search(text)
    if not entities and not _text_flags(text) and unicodedata.is_normalized("NFC", text):
        return text.strip(" \n"), False  # most text: nothing to change but its ends
    untidy = _UNTIDY.search(text) is not None
    # Invisible characters go first (they would hide mojibake and block NFC composition), and again
    # after the repairs, which can decode to them ("&#8203;", "â€‹" are zero-width spaces).
    if untidy:
        text = _visible(text)
    if unescape and "&" in text and _ENTITY.search(text):
        text, untidy = _visible(html.unescape(text)), True
    if not text.isascii():
        repaired = repair_mojibake(text)
        if repaired is not text:
            text, untidy = _visible(repaired), True
        if untidy:
            text = _LATE_INVISIBLE.sub("", text)
        if not unicodedata.is_normalized("NFC", text):
            text, untidy = unicodedata.normalize("NFC", text), True
    return _tidy_spacing(text, untidy), untidy


def _tidy_spacing(text: str, other_spaces: bool = True) -> str:
    """Single spaces inside lines, none at their ends, at most one blank line in a row, none at the ends.

    ``other_spaces=False``: the caller knows ``text`` holds no whitespace but spaces and newlines.
    """
    if not (
        "  " in text
        or " \n" in text
        or "\n " in text
        or "\n\n\n" in text
        or other_spaces
        and (not text.isascii() or "\t" in text)
        and _OTHER_SPACES.search(text)
    ):
        return text.strip(" \n")  # already tidy inside: a few substring checks instead of a loop over lines
    return _tidy_lines(text)


def _tidy_lines(text: str) -> str:
    """The plain spacing rule, line by line. str.split() splits on exactly the whitespace _visible leaves
    (spaces, tabs, no-break and other Unicode spaces)."""
    lines: list[str] = []
    for line in text.split("\n"):
        line = " ".join(line.split())
        if line or (lines and lines[-1]):
            lines.append(line)
    return "\n".join(lines).strip()


# Apostrophes of every style are dropped inside words ("don’t" and "don't" both give "dont"), and so are the
# zero-width (non-)joiners the text keeps (a copy that lost them is the same text); double quotes and
# other punctuation fall away with the non-word characters.
_APOSTROPHE_CHARS = "'\u2018\u2019\u201a\u201b\u2032\u02bc\u200c\u200d"
_APOSTROPHES = re.compile(f"[{_APOSTROPHE_CHARS}]")
_NON_WORD = re.compile(r"[\W_]+")
# For the dedup key's table (see _fold_table): one non-word character at a time, the table's pieces
# separated by a character outside the table.
_PIECE = "\U0010ffff"
_NON_WORD_CHAR = re.compile(f"[^\\w{_PIECE}]|_")
# The fast path's two halves of _NON_WORD: non-ASCII non-word characters become spaces with this regex (a
# single character class: four times cheaper than _NON_WORD, which matches every space), ASCII ones with
# one bytes.translate.
NON_ASCII_NON_WORD = re.compile(r"[^\x00-\x7f\w]")
# ASCII letters and digits kept, other ASCII bytes a space (the dedup key's and title folding's tokens).
ASCII_SEPARATORS = bytes(c if chr(c).isalnum() or c >= 128 else 32 for c in range(256))


@lru_cache(maxsize=1)
def _fold_table() -> tuple[np.ndarray, np.ndarray]:
    """What the dedup key makes of each character of the Basic Multilingual Plane (case-fold, apostrophes
    dropped, non-word characters as spaces), as UTF-8 (at most 9 bytes: a case-fold is at most 3
    characters), and how many bytes (-1 for the surrogates).

    Each of those steps looks at one character at a time, so once NFKC is done a text's key is its
    characters' rows one after the other. Built once a process (about 0.05 s), by the parent before it
    forks its workers; checked against the plain steps for every character (tests)."""
    table = np.zeros((0x10000, 9), dtype=np.uint8)
    lengths = np.full(0x10000, -1, dtype=np.int8)
    codes = [code for code in range(0x10000) if not 0xD800 <= code <= 0xDFFF]
    joined = _APOSTROPHES.sub("", _PIECE.join(chr(code).casefold() for code in codes))
    # The regex once over all of them: [\W_] (one character at a time) keeps the pieces apart.
    encoded = [out.encode("utf-8") for out in _NON_WORD_CHAR.sub(" ", joined).split(_PIECE)]
    sizes = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    rows = np.repeat(np.array(codes), sizes)
    columns = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    table[rows, columns] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    lengths[codes] = sizes
    return table, lengths


@lru_cache(maxsize=1)
def _text_kinds() -> np.ndarray:
    """For each character of the Basic Multilingual Plane: 1 if ``_UNTIDY`` matches it, 2 if it can start
    a ``_MOJIBAKE`` pair, 4 if it can end one (the regexes' own classes, so the two never disagree)."""
    chars = "".join(map(chr, range(0xD800))) + " " * 0x800 + "".join(map(chr, range(0xE000, 0x10000)))
    kinds = np.zeros(0x10000, dtype=np.uint8)
    for bit, pattern in ((1, _UNTIDY), (2, re.compile(_MOJIBAKE_LEAD)), (4, re.compile(_MOJIBAKE_TRAIL))):
        kinds[[m.start() for m in pattern.finditer(chars)]] |= bit
    kinds[0xD800:0xE000] = 0  # the surrogates (stand-ins above): no text holds them
    return kinds


def _utf8(text: str) -> np.ndarray:
    """``text`` as the kernels read it: its UTF-8 bytes (lone surrogates as their 3-byte forms)."""
    return np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)


def _text_flags(text: str) -> int:
    """What normalisation has to do about ``text`` besides composing it (see ``text_flags``)."""
    from pipeline import signature_kernels  # noqa: PLC0415 - numba: not for the CLI's start-up

    return int(signature_kernels.text_flags(_utf8(text), _text_kinds()))


def _compiled_key(text: str) -> bytes | None:
    """The dedup key of NFKC text in one compiled pass over :func:`_fold_table`; None when the text holds
    a character beyond the Basic Multilingual Plane (an emoji ...)."""
    from pipeline import signature_kernels  # noqa: PLC0415 - numba: not for the CLI's start-up

    folded, length = signature_kernels.fold_key(_utf8(text), *_fold_table())
    return folded[:length].tobytes() if length >= 0 else None


def dedup_tokens(text: str) -> list[str]:
    """Word tokens of the dedup key: NFKC, case-folded, apostrophes and punctuation dropped.

    Digits are unified to ASCII by NFKC but kept: two short reports that differ only in their figures
    are distinct articles, and folding digits would merge them.
    """
    return [token.decode("utf-8") for token in dedup_token_bytes(text)]


def dedup_token_bytes(text: str) -> list[bytes]:
    """:func:`dedup_tokens` as UTF-8 bytes."""
    return dedup_key(text).split()


def dedup_key(text: str) -> bytes:
    """The dedup key as UTF-8: the words of :func:`dedup_tokens`, separated by one or more spaces (what the
    shingle hashes read, see :func:`pipeline.signature.key_shingles`).

    The same steps as the plain definition (NFKC, ``casefold``, apostrophes dropped, ``[\\W_]+`` to a
    space), each done the cheap way: NFKC only where ``is_normalized`` says it changes something (after
    "…", common in news text, has become a ".", which the key makes a space as it does NFKC's "..."); the
    non-word characters in two halves (see ``NON_ASCII_NON_WORD``). A property test checks it against the
    plain definition on any Unicode text.
    """
    if text.isascii():
        return _ascii_key(text)
    return _folded_key(_nfkc(text))


def signature_keys(text: str) -> tuple[bytes, bytes]:
    """:func:`dedup_key` and :func:`name_key` of one text: one NFKC step and one compiled pass for both."""
    if text.isascii():
        return _ascii_key(text), _name_key(text)
    text = _nfkc(text)
    from pipeline import signature_kernels  # noqa: PLC0415 - numba: not for the CLI's start-up

    table, lengths = _fold_table()
    key, n, names, m = signature_kernels.fold_key_and_names(_utf8(text), table, lengths, _name_kinds())
    if n >= 0:
        return key[:n].tobytes(), names[:m].tobytes()
    return _folded_key(text), _name_key(text)


def _ascii_key(text: str) -> bytes:
    return text.replace("'", "").lower().encode("ascii").translate(ASCII_SEPARATORS)


def _nfkc(text: str) -> str:
    """NFKC, where it changes something, with "…" as "." first (cheaper than NFKC's "...", and the same
    to both keys: neither is a word character, both end a sentence)."""
    if "\u2026" in text:
        text = text.replace("\u2026", ".")
    return text if unicodedata.is_normalized("NFKC", text) else unicodedata.normalize("NFKC", text)


def _folded_key(text: str) -> bytes:
    """The dedup key of NFKC text that is not ASCII."""
    folded = _compiled_key(text)
    if folded is not None:
        return folded
    text = text.casefold()  # a character beyond the table's (an emoji ...): the regex path
    for char in _APOSTROPHE_CHARS:
        if char in text:
            text = text.replace(char, "")
    return NON_ASCII_NON_WORD.sub(" ", text).encode("utf-8").translate(ASCII_SEPARATORS)


# -- names and figures ------------------------------------------------------------------------------------
# The words that two stories written from one template differ in, and that a light rewrite keeps: a word
# that carries a figure ("3", "$850,000", "2024") or a capitalised word that does not open a sentence
# ("Springfield", "Tuesday", "NASA"). See pipeline.dedup ("light rewrites").
NAMES_VERSION = 1  # bumped whenever name_key's output changes (it names the stored name sets)
_SENTENCE_ENDS = ".!?\u2026\u3002\uff01\uff1f"
# The kinds of character name_key tells apart (bits of _name_kinds; the kernel reads the same).
NAME_SPACE, NAME_DIGIT, NAME_UPPER, NAME_WORD, NAME_END, NAME_CLOSER = 1, 2, 4, 8, 16, 32
_WORDS = re.compile(r"\S+")


def _name_kind(char: str) -> int:
    """The :data:`NAME_SPACE` ... bits of one character; none for a character beyond the Basic
    Multilingual Plane (after NFKC: emoji, rare scripts; no name or figure is spelt with them)."""
    if ord(char) > 0xFFFF:
        return 0
    kind = NAME_SPACE if char.isspace() else 0
    kind |= NAME_DIGIT if char.isdigit() else 0
    kind |= NAME_UPPER if char.isupper() else 0
    kind |= NAME_WORD if not _NON_WORD_CHAR.match(char) else 0
    kind |= NAME_END if char in _SENTENCE_ENDS else 0
    # closing brackets and quotes: "He left." and "(He left.)" both end a sentence
    kind |= NAME_CLOSER if char in "\"'" or unicodedata.category(char) in ("Pe", "Pf") else 0
    return kind


@lru_cache(maxsize=1)
def _name_kinds() -> np.ndarray:
    """:func:`_name_kind` of every character of the Basic Multilingual Plane (0 for the surrogates), each
    predicate mapped over all of them at once (15 ms, where a loop of :func:`_name_kind` takes 140;
    checked against it for every character)."""
    chars = "".join(map(chr, range(0xD800))) + " " * 0x800 + "".join(map(chr, range(0xE000, 0x10000)))
    kinds = np.zeros(0x10000, dtype=np.uint8)
    for bit, test in (
        (NAME_SPACE, str.isspace),
        (NAME_DIGIT, str.isdigit),
        (NAME_UPPER, str.isupper),
        (NAME_END, _SENTENCE_ENDS.__contains__),
        (NAME_CLOSER, lambda char: char in "\"'" or unicodedata.category(char) in ("Pe", "Pf")),
    ):
        kinds |= np.fromiter(map(test, chars), dtype=bool, count=len(chars)).astype(np.uint8) * np.uint8(bit)
    kinds[[m.start() for m in re.finditer(f"[^\\W_{_PIECE}]", chars)]] |= NAME_WORD
    kinds[0xD800:0xE000] = 0  # the surrogates (stand-ins above): no text holds them
    return kinds


def name_tokens(text: str) -> list[bytes]:
    """The names and figures of ``text``, in order (the plain definition :func:`name_key` computes).

    Words are runs of non-space characters of the NFKC text. A word is kept when it holds a digit, or when
    its first word character is upper case and it does not open a sentence: the first word of the text or
    of a paragraph, or a word after one that ends in . ! ? … once closing quotes and brackets are set
    aside. A kept word is its characters as the dedup key folds them, separators left out
    (``"O’Brien's"`` -> ``obriens``, ``"$850,000"`` -> ``850000``), and so are characters beyond the Basic
    Multilingual Plane.
    """
    text = _nfkc(text)
    tokens = []
    opens, end = True, 0
    for match in _WORDS.finditer(text):
        word = match.group()
        if text.count("\n", end, match.start()) >= 2:
            opens = True  # a paragraph's first word
        end = match.end()
        kinds = [_name_kind(char) for char in word]
        lead = next((kind for kind in kinds if kind & NAME_WORD), 0)
        if any(kind & NAME_DIGIT for kind in kinds) or (lead & NAME_UPPER and not opens):
            # each character as the dedup key folds it (case-fold, apostrophes and non-word characters out)
            folded = (_APOSTROPHES.sub("", char.casefold()) for char in word if ord(char) <= 0xFFFF)
            token = "".join(_NON_WORD.sub("", piece) for piece in folded)
            if token:
                tokens.append(token.encode("utf-8"))
        last = [kind for kind in kinds if not kind & NAME_CLOSER]
        if last:  # a word of closing quotes alone leaves the sentence as it was
            opens = bool(last[-1] & NAME_END)
    return tokens


def name_key(text: str) -> bytes:
    """:func:`name_tokens` separated by spaces, in one compiled pass over the text's UTF-8 (a property
    test checks the two agree on any text)."""
    return _name_key(text if text.isascii() else _nfkc(text))


def _name_key(text: str) -> bytes:
    """:func:`name_key` of NFKC text."""
    from pipeline import signature_kernels  # noqa: PLC0415 - numba: not for the CLI's start-up

    found, length = signature_kernels.fold_names(_utf8(text), _name_kinds(), *_fold_table())
    return found[:length].tobytes() if length >= 0 else b" ".join(name_tokens(text))
