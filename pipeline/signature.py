"""MinHash signatures of the dedup key, bit-compatible with datasketch's ``affine32`` scheme.

A document's shingles are its word n-grams (``dedup_tokens``). Each word is hashed once (32-bit xxhash of
its UTF-8), and an n-gram's hash combines its words' hashes by position (an odd multiplier per position,
summed modulo 2^32, then MurmurHash3's finalizer), all n-grams of a document at once in numpy: no n-gram
string is ever built. :func:`shingle_hash` is the same function on one n-gram's bytes, so
``MinHash(num_perm, seed=seed, scheme="affine32", hashfunc=shingle_hash).update_batch(ngrams)`` gives the
same hash values as :meth:`Signer.signature` (tested). The permutations are datasketch's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np
import xxhash

from pipeline.normalize import NORMALIZATION_VERSION

if TYPE_CHECKING:
    from datasketch import MinHash

SCHEME = "affine32"
LSH_MARGIN = 0.2  # LSH bands are tuned for threshold - LSH_MARGIN (see pipeline/dedup.py)
_U32 = np.uint32
_EMPTY = np.iinfo(np.uint32).max
_BLOCK_COLUMNS = 1 << 15  # shingles per signature block: num_perm x 32,768 uint32 = 16 MB at 128


@dataclass(frozen=True, slots=True)
class MinHashConfig:
    """Dedup settings.

    Args:
        threshold: Jaccard similarity of shingle sets at or above which two documents are near duplicates.
        containment: share of the shorter document's shingles found in the longer one at or above which the
            shorter is a copy cut short (a truncated page is the same article to a reader).
        min_containment_shingles: a copy cut short must have at least this many shingles, so a one-line
            snippet is never folded into every article that quotes it.
        shingle_size: words per shingle.
        num_perm: MinHash permutations.
        seed: permutation seed.
    """

    threshold: float = 0.8
    containment: float = 0.9
    min_containment_shingles: int = 20
    shingle_size: int = 5
    num_perm: int = 128
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if not 0.0 < self.containment <= 1.0:
            raise ValueError("containment must be in (0, 1]")
        if self.shingle_size < 1:
            raise ValueError("shingle size must be at least 1")
        if not 16 <= self.num_perm <= 1024:
            raise ValueError("num_perm must be in [16, 1024]")

    def fingerprint(self) -> str:
        """Names everything a stored signature depends on, so an index never mixes configurations."""
        return (
            f"minhash-{SCHEME}-xxh32words-n{self.shingle_size}-p{self.num_perm}-s{self.seed}"
            f"-norm{NORMALIZATION_VERSION}"
        )


def shingles(tokens: list[bytes], size: int) -> list[bytes]:
    """Word n-grams joined by a space (for datasketch's ``update_batch``; the signature path never builds
    them); a document shorter than ``size`` words is one shingle."""
    if len(tokens) <= size:
        return [b" ".join(tokens)] if tokens else []
    return [b" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)]


# One odd multiplier per position in the n-gram (golden-ratio steps): "a b" and "b a" hash apart.
_POSITION = np.array([(0x9E3779B1 * (2 * k + 1)) & 0xFFFFFFFF for k in range(64)], dtype=_U32)


class _TokenHashes(dict):
    """Token -> 32-bit xxhash of its UTF-8, remembered: most words of a corpus recur, and a dict hit costs
    a tenth of hashing. Bounded: emptied when it holds ``LIMIT`` tokens."""

    LIMIT = 1 << 20

    def __missing__(self, token: bytes) -> int:
        if len(self) >= self.LIMIT:
            self.clear()
        value = self[token] = xxhash.xxh32_intdigest(token)
        return value


_TOKEN_HASHES = _TokenHashes()


def token_hashes(tokens: Iterable[bytes], count: int = -1) -> np.ndarray:
    """32-bit xxhash of each (UTF-8) token; ``count``: how many there are, when known (faster)."""
    return np.fromiter(map(_TOKEN_HASHES.__getitem__, tokens), dtype=_U32, count=count)


def shingle_hashes(tokens: list[bytes], size: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word n-grams of dedup tokens (the set whose Jaccard we measure)."""
    return shingle_hash_sets([tokens], size)[0]


def shingle_hash_sets(documents: list[list[bytes]], size: int) -> list[np.ndarray]:
    """:func:`shingle_hashes` of many documents, computed as one batch (a few numpy calls per chunk of
    documents instead of per document, which is what most of the time went to)."""
    if size > len(_POSITION):
        raise ValueError(f"shingle size must be at most {len(_POSITION)}")
    lengths = np.array([len(tokens) for tokens in documents], dtype=np.int64)
    words = token_hashes(chain.from_iterable(documents), int(lengths.sum()))
    starts = np.cumsum(lengths) - lengths
    # Every window of ``size`` words over the concatenated documents; those that cross a boundary are
    # never read.
    count = max(words.size - size + 1, 0)
    with np.errstate(over="ignore"):
        combined = words[:count] * _POSITION[0]
        for k in range(1, size):
            combined += words[k : k + count] * _POSITION[k]
    mixed = _fmix32(combined)
    result = []
    for start, length in zip(starts.tolist(), lengths.tolist(), strict=True):
        if length == 0:
            result.append(np.empty(0, dtype=_U32))
            continue
        if length < size:  # a document shorter than ``size`` words is one shingle
            piece = words[start : start + length]
            with np.errstate(over="ignore"):
                one = (piece * _POSITION[:length]).sum(dtype=_U32)
            result.append(_fmix32(np.array([one], dtype=_U32)))
            continue
        ordered = np.sort(mixed[start : start + length - size + 1])
        result.append(ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))])  # np.unique, faster
    return result


def shingle_hash(shingle: bytes) -> int:
    """The hash of one n-gram (words joined by single spaces), as :func:`shingle_hashes` computes it.

    For datasketch: ``MinHash(..., scheme="affine32", hashfunc=shingle_hash)``.
    """
    words = token_hashes(shingle.split(b" "))
    with np.errstate(over="ignore"):
        combined = (words * _POSITION[: words.size]).sum(dtype=_U32)
    return int(_fmix32(np.array([combined], dtype=_U32))[0])


@lru_cache(maxsize=8)
def lsh_bands(config: MinHashConfig) -> list[tuple[int, int]]:
    """The signature ranges of the LSH bands for ``config``: datasketch ``MinHashLSH``'s choice.

    MinHashLSH picks the bands (b, r) that minimise the false-positive area under the S-curve
    ``1 - (1 - s^r)^b`` below the candidate threshold plus the false-negative area above it (weights 0.5,
    0.5), in the order b = 1.., r = 1.. . Its module imports scipy for the integrals (0.4 s a run, a
    quarter of an incremental run of 1,000 files); the integrands are polynomials of degree b * r, which
    Gauss-Legendre quadrature with ``num_perm // 2 + 1`` nodes integrates exactly, so this computes the
    same choice with numpy. ``tests/test_signature.py`` checks it against MinHashLSH.
    """
    threshold, num_perm = max(0.3, config.threshold - LSH_MARGIN), config.num_perm
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def area(low: float, high: float, b: int, r: np.ndarray, false_negative: bool) -> np.ndarray:
        s = (high - low) / 2 * nodes + (high + low) / 2  # nodes mapped from [-1, 1] to [low, high]
        miss = (1 - s[None, :] ** r[:, None]) ** b  # 1 - P(candidate)
        return (high - low) / 2 * ((miss if false_negative else 1 - miss) @ weights)

    best, choice = float("inf"), (0, 0)
    for b in range(1, num_perm + 1):
        rows = np.arange(1, num_perm // b + 1)
        errors = 0.5 * area(0.0, threshold, b, rows, False) + 0.5 * area(threshold, 1.0, b, rows, True)
        i = int(np.argmin(errors))  # the first of equal minima, as datasketch's strict "<"
        if errors[i] < best:
            best, choice = float(errors[i]), (b, int(rows[i]))
    bands, width = choice
    return [(i * width, (i + 1) * width) for i in range(bands)]


class Signer:
    """Computes MinHash signatures with fixed permutations, and knows the LSH bands they are cut into.

    The permutations are datasketch's for the ``affine32`` scheme, drawn the way ``MinHash`` draws them
    (``numpy.random.RandomState(seed)``: odd multipliers, then offsets); datasketch itself is not imported
    (it imports scipy: 0.4 s). ``tests/test_signature.py`` checks the values against datasketch bit for
    bit.
    """

    def __init__(self, config: MinHashConfig) -> None:
        self.config = config
        generator = np.random.RandomState(config.seed)
        a = generator.randint(0, 1 << 31, config.num_perm, dtype=_U32) * _U32(2) + _U32(1)
        b = generator.randint(0, 1 << 32, config.num_perm, dtype=_U32)
        self._a = a[:, None]
        self._b = b[:, None]
        self.hashranges = lsh_bands(config)

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """MinHash values (uint32, ``num_perm`` long) of a shingle hash set."""
        return self.signatures([hashes])[0]

    def signatures(self, sets: list[np.ndarray]) -> np.ndarray:
        """:meth:`signature` of many shingle hash sets: ``(len(sets), num_perm)``, in blocks of documents
        (one multiply-add and one ``minimum.reduceat`` per block)."""
        result = np.full((len(sets), self.config.num_perm), _EMPTY, dtype=_U32)
        blocks: list[list[int]] = []
        columns = _BLOCK_COLUMNS
        for i, hashes in enumerate(sets):
            if hashes.size == 0:
                continue  # the empty set keeps the empty signature
            if columns + hashes.size > _BLOCK_COLUMNS:
                blocks.append([])
                columns = 0
            blocks[-1].append(i)
            columns += hashes.size
        for block in blocks:
            mixed = _fmix32(np.concatenate([sets[i] for i in block]).astype(_U32))
            values = np.multiply(
                self._a, mixed[None, :]
            )  # wraps modulo 2^32, as datasketch's uint32 arithmetic
            np.add(values, self._b, out=values)
            offsets = np.cumsum([0] + [sets[i].size for i in block[:-1]])
            result[block] = np.minimum.reduceat(values, offsets, axis=1).T
        return result

    def minhash(self, signature: np.ndarray) -> MinHash:
        """A datasketch MinHash carrying these hash values, for MinHashLSH."""
        from datasketch import MinHash  # noqa: PLC0415

        return MinHash(
            num_perm=self.config.num_perm, seed=self.config.seed, hashvalues=signature, scheme=SCHEME
        )


def _fmix32(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer, the pre-mix datasketch's affine schemes apply to each input hash."""
    with np.errstate(over="ignore"):
        h = h ^ (h >> _U32(16))
        h = h * _U32(0x85EBCA6B)
        h = h ^ (h >> _U32(13))
        h = h * _U32(0xC2B2AE35)
        return h ^ (h >> _U32(16))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted unique hash arrays."""
    if a.size == 0 and b.size == 0:
        return 1.0
    inter = np.intersect1d(a, b, assume_unique=True).size
    return inter / (a.size + b.size - inter)


def containment(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller set found in the larger."""
    small = min(a.size, b.size)
    if small == 0:
        return 0.0
    return np.intersect1d(a, b, assume_unique=True).size / small
