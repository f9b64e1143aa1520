"""The compiled loops (numba, compiled once and cached on disk) behind the dedup key and the signatures:

- :func:`word_hashes`, :func:`shingle_sets`, :func:`minhash`: word hashes, shingle sets and MinHash values
  of a chunk of dedup keys in three passes over flat arrays. A chunk's keys (words separated by spaces, as
  UTF-8) are concatenated into one byte array; ``offsets[i]:offsets[i + 1]`` is document ``i``'s. Nothing
  builds a Python object per word or per shingle, which is where the time of the numpy version went (a
  dictionary look-up per word, and a ``num_perm`` x shingles work array that did not fit in the cache);
- :func:`common`: the size of the intersection of two sorted shingle sets (Jaccard, containment);
- :func:`fold_key`, :func:`text_flags`, :func:`fold_key_and_names` and :func:`fold_names`: one pass over a
  text's UTF-8 with a table per character of the Basic Multilingual Plane, for
  :func:`pipeline.normalize.dedup_key`, :func:`pipeline.normalize.normalize_text` and
  :func:`pipeline.normalize.signature_keys` (the dedup key and the names and figures at once);
- :func:`language_features`: the walk of py3langid's byte automaton over a text, for
  :mod:`pipeline.language` (py3langid walks it in a Python loop: 0.4 us a byte).

Each computes exactly what the plain definition does: tests check them against ``xxhash``,
:func:`pipeline.signature.shingles`, datasketch's ``MinHash.update_batch``, ``np.intersect1d``, ``np.sort``
and the regexes, the tables against the plain steps for every character, and the language scores against
py3langid's own. :func:`warm_up` loads them
all (numba's first call in a process costs ~0.3 s); a parent calls it before forking its workers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Every value is a uint64 holding 32 bits (masked after each product): numba turns a mix of signed and
# unsigned integers into floats, so the constants and shift counts are uint64 too.
_U = np.uint64
_MASK = _U(0xFFFFFFFF)
_P1, _P2, _P3, _P4, _P5 = _U(0x9E3779B1), _U(0x85EBCA77), _U(0xC2B2AE3D), _U(0x27D4EB2F), _U(0x165667B1)
_M1, _M2 = _U(0x85EBCA6B), _U(0xC2B2AE35)
_S8, _S11, _S13, _S15, _S16, _S17, _S24, _S32 = (_U(n) for n in (8, 11, 13, 15, 16, 17, 24, 32))
_SPACE = 32


@njit(cache=True, inline="always")
def _rotl(x: np.uint64, r: np.uint64) -> np.uint64:
    return ((x << r) | (x >> (_S32 - r))) & _MASK


@njit(cache=True, inline="always")
def _read32(data: np.ndarray, i: int) -> np.uint64:
    return _U(data[i]) | (_U(data[i + 1]) << _S8) | (_U(data[i + 2]) << _S16) | (_U(data[i + 3]) << _S24)


@njit(cache=True)
def xxh32(data: np.ndarray, start: int, end: int) -> np.uint64:
    """XXH32 (seed 0) of ``data[start:end]``, as ``xxhash.xxh32_intdigest``."""
    n = end - start
    i = start
    if n >= 16:
        v1 = (_P1 + _P2) & _MASK
        v2 = _P2
        v3 = _U(0)
        v4 = (_MASK + _U(1) - _P1) & _MASK
        while i <= end - 16:
            v1 = (_rotl((v1 + _read32(data, i) * _P2) & _MASK, _S13) * _P1) & _MASK
            v2 = (_rotl((v2 + _read32(data, i + 4) * _P2) & _MASK, _S13) * _P1) & _MASK
            v3 = (_rotl((v3 + _read32(data, i + 8) * _P2) & _MASK, _S13) * _P1) & _MASK
            v4 = (_rotl((v4 + _read32(data, i + 12) * _P2) & _MASK, _S13) * _P1) & _MASK
            i += 16
        h = (_rotl(v1, _U(1)) + _rotl(v2, _U(7)) + _rotl(v3, _U(12)) + _rotl(v4, _U(18))) & _MASK
    else:
        h = _P5
    h = (h + _U(n)) & _MASK
    while i + 4 <= end:
        h = (_rotl((h + _read32(data, i) * _P3) & _MASK, _S17) * _P4) & _MASK
        i += 4
    while i < end:
        h = (_rotl((h + _U(data[i]) * _P5) & _MASK, _S11) * _P1) & _MASK
        i += 1
    h ^= h >> _S15
    h = (h * _P2) & _MASK
    h ^= h >> _S13
    h = (h * _P3) & _MASK
    h ^= h >> _S16
    return h


@njit(cache=True)
def word_hashes(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The XXH32 of every word (a run of bytes other than the space) of each document, and where each
    document's words start in that array (``starts[i]:starts[i + 1]``)."""
    hashes = np.empty(data.size // 2 + offsets.size, dtype=np.uint32)  # a document of n bytes: <= (n+1)/2
    starts = np.empty(offsets.size, dtype=np.int64)
    count = 0
    for doc in range(offsets.size - 1):
        starts[doc] = count
        i, end = offsets[doc], offsets[doc + 1]
        while i < end:
            while i < end and data[i] == _SPACE:
                i += 1
            if i == end:
                break
            first = i
            while i < end and data[i] != _SPACE:
                i += 1
            hashes[count] = xxh32(data, first, i)
            count += 1
    starts[offsets.size - 1] = count
    return hashes[:count], starts


@njit(cache=True, inline="always")
def fmix32(h: np.uint64) -> np.uint64:
    """MurmurHash3's 32-bit finalizer."""
    h ^= h >> _S16
    h = (h * _M1) & _MASK
    h ^= h >> _S13
    h = (h * _M2) & _MASK
    return h ^ (h >> _S16)


@njit(cache=True)
def _radix_sort(values: np.ndarray) -> np.ndarray:
    """``values`` (uint32) sorted: four passes of one byte each (a document's few hundred shingles sort in
    a third of the time a comparison sort takes)."""
    source = values
    target = np.empty_like(values)
    counts = np.empty(257, dtype=np.int64)
    for shift in range(0, 32, 8):
        counts[:] = 0
        for value in source:
            counts[((value >> shift) & 0xFF) + 1] += 1
        for digit in range(1, 257):
            counts[digit] += counts[digit - 1]
        for value in source:
            digit = (value >> shift) & 0xFF
            target[counts[digit]] = value
            counts[digit] += 1
        source, target = target, source
    return source


@njit(cache=True)
def shingle_sets(
    words: np.ndarray, starts: np.ndarray, size: int, position: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each document's sorted unique shingle hashes, concatenated, and their offsets.

    A shingle's hash is ``fmix32(sum(word[k] * position[k]) mod 2^32)`` over its ``size`` words; a
    document shorter than ``size`` words is one shingle of all its words.
    """
    documents = starts.size - 1
    out = np.empty(max(words.size, 1), dtype=np.uint32)
    offsets = np.zeros(documents + 1, dtype=np.int64)
    count = 0
    for doc in range(documents):
        first, end = starts[doc], starts[doc + 1]
        length = end - first
        if length == 0:
            offsets[doc + 1] = count
            continue
        width = min(size, length)
        windows = length - width + 1
        piece = np.empty(windows, dtype=np.uint32)
        for w in range(windows):
            total = _U(0)
            for k in range(width):
                total = (total + _U(words[first + w + k]) * _U(position[k])) & _MASK
            piece[w] = fmix32(total)
        piece = _radix_sort(piece)
        previous = np.uint32(0)
        for w in range(windows):
            value = piece[w]
            if w == 0 or value != previous:
                out[count] = value
                count += 1
            previous = value
        offsets[doc + 1] = count
    return out[:count], offsets


@njit(cache=True)
def minhash(shingles: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(documents, num_perm)`` MinHash values: per permutation ``k``, the minimum over a document's
    shingles ``s`` of ``(a[k] * fmix32(s) + b[k]) mod 2^32`` (datasketch's ``affine32``); an empty set keeps
    the empty value 2^32 - 1."""
    documents = offsets.size - 1
    perms = a.size
    result = np.full((documents, perms), _MASK, dtype=np.uint32)
    values = np.empty(perms, dtype=np.uint32)
    for doc in range(documents):
        row = result[doc]
        for i in range(offsets[doc], offsets[doc + 1]):
            mixed = np.uint32(fmix32(_U(shingles[i])))
            for k in range(perms):
                values[k] = a[k] * mixed + b[k]  # uint32 arithmetic: wraps modulo 2^32
            for k in range(perms):
                if values[k] < row[k]:
                    row[k] = values[k]
    return result


@njit(cache=True)
def common(a: np.ndarray, b: np.ndarray) -> int:
    """How many values two sorted arrays of unique values share (one merge pass)."""
    i = j = count = 0
    while i < a.size and j < b.size:
        if a[i] < b[j]:
            i += 1
        elif a[i] > b[j]:
            j += 1
        else:
            count += 1
            i += 1
            j += 1
    return count


def warm_up() -> None:
    """Load every kernel (numba's first call in a process takes ~0.3 s, reading its cache): a parent that
    calls this before it forks its workers pays that once for all of them."""
    data = np.frombuffer(b"a b c d e f", dtype=np.uint8)
    words, starts = word_hashes(data, np.array([0, data.size], dtype=np.int64))
    shingles, offsets = shingle_sets(words, starts, 5, np.ones(5, dtype=np.uint32))
    minhash(shingles, offsets, np.ones(2, dtype=np.uint32), np.ones(2, dtype=np.uint32))
    common(shingles, shingles)
    from pipeline.normalize import dedup_key, normalize_text, signature_keys  # noqa: PLC0415 - their tables

    dedup_key("warm\u00e9")
    normalize_text("warm\u00e9")
    # the dtypes of pipeline.language's arrays: another dtype would compile another version of the loop
    nowhere = np.zeros(256, dtype=np.uint32), np.zeros(1, dtype=np.int64), np.full(1, -1, dtype=np.int32)
    language_features(data, *nowhere, np.zeros(1, dtype=np.int32))
    signature_keys("Warm \u00c9")  # fold_key_and_names
    signature_keys("Warm")  # fold_names (ASCII text)


@njit(cache=True, inline="always")
def _decode(data: np.ndarray, i: int) -> tuple[int, int]:
    """The code point of the UTF-8 sequence at ``data[i]`` (0x10000 for any beyond the Basic Multilingual
    Plane) and where the next one starts; ``data`` is valid UTF-8 (Python encoded it)."""
    first = int(data[i])
    if first < 0x80:
        return first, i + 1
    if first < 0xE0:
        return ((first & 0x1F) << 6) | (int(data[i + 1]) & 0x3F), i + 2
    if first < 0xF0:
        return ((first & 0x0F) << 12) | ((int(data[i + 1]) & 0x3F) << 6) | (int(data[i + 2]) & 0x3F), i + 3
    return 0x10000, i + 4


@njit(cache=True)
def fold_key(data: np.ndarray, table: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, int]:
    """The dedup key of UTF-8 text whose characters are all in the Basic Multilingual Plane: each
    character replaced by its row of ``table`` (``lengths`` bytes: its case-fold with apostrophes dropped
    and non-word characters as spaces, see :func:`pipeline.normalize.dedup_key`). The length is -1 when a
    character lies outside the table (the caller takes the plain path)."""
    out = np.empty(data.size * 5 + 1, dtype=np.uint8)  # 2 bytes in -> at most 3 characters of 3 bytes
    n = 0
    i = 0
    while i < data.size:
        code, i = _decode(data, i)
        if code >= 0x10000:
            return out, -1
        length = lengths[code]
        if length < 0:
            return out, -1
        for k in range(length):
            out[n + k] = table[code, k]
        n += length
    return out, n


# What text_flags reports (see pipeline.normalize: normalisation has nothing to do when it reports none).
UNTIDY, MOJIBAKE, SPACING = 1, 2, 4


@njit(cache=True)
def text_flags(data: np.ndarray, kinds: np.ndarray) -> int:
    """What of :func:`pipeline.normalize.normalize_text`'s work UTF-8 text needs, in one pass: ``UNTIDY``
    (a character ``kinds`` marks 1: odd line breaks, invisible characters, spaces other than " "),
    ``MOJIBAKE`` (a character marked 2, a mojibake lead, right before one marked 4, a trail) and ``SPACING``
    (two spaces, a space before or after a line break, three line breaks in a row). Characters beyond the
    Basic Multilingual Plane are none of these."""
    flags = 0
    previous = 0  # the two characters before, as code points
    before = 0
    i = 0
    while i < data.size:
        code, i = _decode(data, i)
        kind = kinds[code] if code < 0x10000 else 0
        if kind & 1:
            flags |= UNTIDY
        if kind & 4 and previous < 0x10000 and kinds[previous] & 2:
            flags |= MOJIBAKE
        if (code == 32 and (previous == 32 or previous == 10)) or (code == 10 and previous == 32):
            flags |= SPACING
        if code == 10 and previous == 10 and before == 10:
            flags |= SPACING
        before = previous
        previous = code
    return flags


@njit(cache=True)
def language_features(
    data: np.ndarray, nextmove: np.ndarray, rowbase: np.ndarray, output: np.ndarray, seen: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The features of py3langid's model that UTF-8 ``data`` holds and how often, in the order the walk
    first meets them (py3langid's ``visit_counts``, whose ``Counter`` keeps that order: the scores are then
    summed in its order, bit for bit).

    The automaton moves from ``state`` on a byte to ``nextmove[rowbase[state] + byte]``; a state whose
    ``output`` is not negative completes that feature. ``seen``: int32 zeros, one per feature of the
    model, the caller's scratch (100,053 features: 400 KB that a fresh array would zero for every text,
    and map and unmap where malloc's thresholds are fixed, as Dask's workers fix them); left zeroed.
    """
    order = np.empty(data.size, dtype=np.int64)
    found = 0
    state = 0
    for byte in data:
        state = nextmove[rowbase[state] + byte]
        feature = output[state]
        if feature >= 0:
            if seen[feature] == 0:
                order[found] = feature
                found += 1
            seen[feature] += 1
    counts = np.empty(found, dtype=np.float32)
    for k in range(found):
        counts[k] = seen[order[k]]
        seen[order[k]] = 0
    return order[:found], counts


# The bits of pipeline.normalize._name_kinds (NAME_SPACE ...).
_N_SPACE, _N_DIGIT, _N_UPPER, _N_WORD, _N_END, _N_CLOSER = 1, 2, 4, 8, 16, 32


@njit(cache=True, inline="always")
def _keep_word(rows: np.ndarray, start: int, end: int, names: np.ndarray, m: int) -> int:
    """Append a kept word's dedup-key rows ``rows[start:end]``, without their spaces, and a space to
    ``names`` at ``m``; return the new length."""
    first = m
    for k in range(start, end):
        if rows[k] != _SPACE:
            names[m] = rows[k]
            m += 1
    if m > first:
        names[m] = _SPACE
        m += 1
    return m


@njit(cache=True)
def fold_key_and_names(
    data: np.ndarray, table: np.ndarray, lengths: np.ndarray, kinds: np.ndarray
) -> tuple[np.ndarray, int, np.ndarray, int]:
    """:func:`fold_key` of NFKC text as UTF-8 and its names and figures (see
    :func:`pipeline.normalize.name_tokens`) in one pass: the key and its length, then the names separated
    by spaces (each kept word as its rows of the key without the spaces in them) and their length.

    ``kinds`` holds each character's bits (space, digit, upper case, word character, sentence end,
    closing quote or bracket). Both lengths are -1 when a character lies outside the tables (beyond the
    Basic Multilingual Plane: the caller takes the plain paths)."""
    key = np.empty(data.size * 5 + 1, dtype=np.uint8)  # 2 bytes in -> at most 3 characters of 3 bytes
    names = np.empty(data.size * 5 + 1, dtype=np.uint8)
    n = m = 0
    i = 0
    opens = True  # the next word opens a sentence
    newlines = 0  # line breaks since the last word
    inside = digit = upper = seen = False
    start = 0  # where the current word's rows begin in the key
    ends = -1  # whether its last character that is not a closing quote or bracket ends a sentence
    while i < data.size:
        code, i = _decode(data, i)
        if code >= 0x10000 or lengths[code] < 0:
            return key, -1, names, -1
        kind = kinds[code]
        if kind & _N_SPACE:
            if inside:
                if digit or (upper and not opens):
                    m = _keep_word(key, start, n, names, m)
                if ends >= 0:
                    opens = ends == 1
                inside = False
                newlines = 0
            if code == 10:
                newlines += 1
        else:
            if not inside:
                if newlines >= 2:
                    opens = True  # a paragraph's first word
                inside = True
                start = n
                digit = upper = seen = False
                ends = -1
            if kind & _N_DIGIT:
                digit = True
            if not seen and kind & _N_WORD:
                seen = True
                upper = (kind & _N_UPPER) != 0
            if not kind & _N_CLOSER:
                ends = 1 if kind & _N_END else 0
        for k in range(lengths[code]):
            key[n + k] = table[code, k]
        n += lengths[code]
    if inside and (digit or (upper and not opens)):
        m = _keep_word(key, start, n, names, m)
    return key, n, names, m - 1 if m else 0


@njit(cache=True)
def fold_names(
    data: np.ndarray, kinds: np.ndarray, table: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, int]:
    """The names and figures of NFKC text as UTF-8, as :func:`fold_key_and_names` finds them, where a
    character beyond the Basic Multilingual Plane has no kind and is left out (its dedup key needs the
    plain path; its names do not). The length is -1 when the text holds a lone surrogate."""
    out = np.empty(data.size * 5 + 1, dtype=np.uint8)
    m = 0
    i = 0
    opens = True
    newlines = 0
    while i < data.size:
        code, after = _decode(data, i)
        if code < 0x10000 and lengths[code] < 0:
            return out, -1
        if code < 0x10000 and kinds[code] & _N_SPACE:
            if code == 10:
                newlines += 1
            i = after
            continue
        if newlines >= 2:
            opens = True  # a paragraph's first word
        newlines = 0
        start = i
        digit = upper = seen = False
        ends = -1
        while i < data.size:
            code, after = _decode(data, i)
            if code < 0x10000 and lengths[code] < 0:
                return out, -1
            kind = kinds[code] if code < 0x10000 else 0
            if kind & _N_SPACE:
                break
            if kind & _N_DIGIT:
                digit = True
            if not seen and kind & _N_WORD:
                seen = True
                upper = (kind & _N_UPPER) != 0
            if not kind & _N_CLOSER:
                ends = 1 if kind & _N_END else 0
            i = after
        if digit or (upper and not opens):  # a kept word: its rows, read again (most words are not kept)
            first = m
            j = start
            while j < i:
                code, j = _decode(data, j)
                if code < 0x10000:
                    for k in range(lengths[code]):
                        if table[code, k] != _SPACE:
                            out[m] = table[code, k]
                            m += 1
            if m > first:
                out[m] = _SPACE
                m += 1
        if ends >= 0:
            opens = ends == 1
    return out, m - 1 if m else 0
