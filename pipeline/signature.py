"""MinHash signatures of the dedup key, bit-compatible with datasketch's ``affine32`` scheme.

A document's shingles are its word n-grams (``dedup_tokens``). Each word is hashed once (32-bit xxhash of
its UTF-8), and an n-gram's hash combines its words' hashes by position (an odd multiplier per position,
summed modulo 2^32, then MurmurHash3's finalizer), all n-grams of a chunk of documents at once in
compiled loops (:mod:`pipeline.signature_kernels`): no n-gram string is ever built. :func:`shingle_hash`
is the same function on one n-gram's bytes, so
``MinHash(num_perm, seed=seed, scheme="affine32", hashfunc=shingle_hash).update_batch(ngrams)`` gives the
same hash values as :meth:`Signer.signature` (tested). The permutations are datasketch's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import xxhash

from pipeline.normalize import NAMES_VERSION, NORMALIZATION_VERSION

if TYPE_CHECKING:
    from datasketch import MinHash

SCHEME = "affine32"
LSH_MARGIN = 0.2  # LSH bands are tuned for threshold - LSH_MARGIN (see pipeline/dedup.py)
_U32 = np.uint32


@dataclass(frozen=True, slots=True)
class MinHashConfig:
    """Dedup settings.

    Args:
        threshold: Jaccard similarity of shingle sets at or above which two documents are near duplicates.
        containment: share of the shorter document's shingles found in the longer one at or above which the
            shorter is a copy cut short (a truncated page is the same article to a reader).
        min_containment_shingles: a copy cut short must have at least this many shingles, so a one-line
            snippet is never folded into every article that quotes it.
        rewrite_threshold: Jaccard at or above which a pair below ``threshold`` is still a near duplicate
            when the two texts' names and figures agree (a light rewrite, see :mod:`pipeline.dedup`); at
            or above ``threshold`` the second check is off. LSH bands are tuned for
            ``threshold - LSH_MARGIN`` (0.6 by default), so a lower value finds few more pairs.
        names_tolerance: share of the two texts' names and figures (their union) that may be in one text
            only for that check (at least one is always allowed).
        min_names: the check needs at least this many names and figures in the two texts together (texts
            without them give it nothing to go on).
        shingle_size: words per shingle.
        num_perm: MinHash permutations.
        seed: permutation seed.
    """

    threshold: float = 0.8
    containment: float = 0.9
    min_containment_shingles: int = 20
    rewrite_threshold: float = 0.6
    names_tolerance: float = 0.25
    min_names: int = 3
    shingle_size: int = 5
    num_perm: int = 128
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if not 0.0 < self.containment <= 1.0:
            raise ValueError("containment must be in (0, 1]")
        if not 0.0 < self.rewrite_threshold <= 1.0:
            raise ValueError("rewrite threshold must be in (0, 1]")
        if not 0.0 <= self.names_tolerance < 1.0:
            raise ValueError("names tolerance must be in [0, 1)")
        if self.min_names < 1:
            raise ValueError("min names must be at least 1")
        if self.shingle_size < 1:
            raise ValueError("shingle size must be at least 1")
        if not 16 <= self.num_perm <= 1024:
            raise ValueError("num_perm must be in [16, 1024]")

    def fingerprint(self) -> str:
        """Names everything a stored signature depends on, so an index never mixes configurations."""
        return (
            f"minhash-{SCHEME}-xxh32words-n{self.shingle_size}-p{self.num_perm}-s{self.seed}"
            f"-norm{NORMALIZATION_VERSION}-names{NAMES_VERSION}"
        )


def shingles(tokens: list[bytes], size: int) -> list[bytes]:
    """Word n-grams joined by a space (for datasketch's ``update_batch``; the signature path never builds
    them); a document shorter than ``size`` words is one shingle."""
    if len(tokens) <= size:
        return [b" ".join(tokens)] if tokens else []
    return [b" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)]


# One odd multiplier per position in the n-gram (golden-ratio steps): "a b" and "b a" hash apart.
_POSITION = np.array([(0x9E3779B1 * (2 * k + 1)) & 0xFFFFFFFF for k in range(64)], dtype=_U32)


def token_hashes(tokens: Iterable[bytes]) -> np.ndarray:
    """32-bit xxhash of each (UTF-8) token (the plain definition the compiled path reproduces)."""
    return np.array([xxhash.xxh32_intdigest(token) for token in tokens], dtype=_U32)


def shingle_hashes(tokens: list[bytes], size: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the word n-grams of dedup tokens (the set whose Jaccard we measure)."""
    return shingle_hash_sets([tokens], size)[0]


def shingle_hash_sets(documents: list[list[bytes]], size: int) -> list[np.ndarray]:
    """:func:`shingle_hashes` of many documents (tokens as :func:`pipeline.normalize.dedup_token_bytes`
    gives them)."""
    shingles, offsets, _ = key_shingles([b" ".join(tokens) for tokens in documents], size)
    return [shingles[offsets[i] : offsets[i + 1]] for i in range(len(documents))]


def key_shingles(keys: list[bytes], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The shingle sets of many dedup keys (:func:`pipeline.normalize.dedup_key`) in one pass: every set
    concatenated, each set's offsets in it (``offsets[i]:offsets[i + 1]``), and each key's word count."""
    if size > len(_POSITION):
        raise ValueError(f"shingle size must be at most {len(_POSITION)}")
    from pipeline import signature_kernels as kernels  # noqa: PLC0415 - numba: 0.2 s to import

    data = np.frombuffer(b"".join(keys), dtype=np.uint8)
    ends = np.fromiter(map(len, keys), dtype=np.int64, count=len(keys)).cumsum()
    words, starts = kernels.word_hashes(data, np.concatenate(([0], ends)))
    shingles, offsets = kernels.shingle_sets(words, starts, size, _POSITION)
    return shingles, offsets, np.diff(starts)


def name_sets(keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The name sets of many name keys (:func:`pipeline.normalize.name_key`): each set's sorted unique
    32-bit token hashes (its one-word shingles), concatenated, and each set's offsets in that array."""
    names, offsets, _ = key_shingles(keys, 1)
    return names, offsets


def pack_sets(sets: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Shingle sets as one uint32 array and the offsets of each set in it (``SignedBatch`` columns)."""
    packed = np.concatenate(sets).astype(_U32) if sets else np.empty(0, _U32)
    return packed, np.concatenate(([0], np.cumsum([s.size for s in sets], dtype=np.int64)))


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
        self._a = a
        self._b = b
        self.hashranges = lsh_bands(config)

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """MinHash values (uint32, ``num_perm`` long) of a shingle hash set."""
        return self.signatures([hashes])[0]

    def signatures(self, sets: list[np.ndarray]) -> np.ndarray:
        """:meth:`signature` of many shingle hash sets: ``(len(sets), num_perm)``."""
        return self.packed_signatures(*pack_sets(sets))

    def packed_signatures(self, shingles: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """:meth:`signatures` of sets given packed, as :func:`key_shingles` returns them."""
        from pipeline import signature_kernels as kernels  # noqa: PLC0415

        return kernels.minhash(shingles, offsets, self._a, self._b)

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
    from pipeline.signature_kernels import common  # noqa: PLC0415 - numba: 0.2 s to import

    inter = common(a, b)
    return inter / (a.size + b.size - inter)


def containment(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the smaller set found in the larger."""
    small = min(a.size, b.size)
    if small == 0:
        return 0.0
    from pipeline.signature_kernels import common  # noqa: PLC0415

    return common(a, b) / small
