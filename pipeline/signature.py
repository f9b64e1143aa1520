"""MinHash signatures of the dedup key, bit-compatible with datasketch's ``affine32`` scheme.

A document's shingles are its word n-grams (``dedup_tokens``), each hashed with 32-bit xxhash of the
UTF-8 n-gram joined by single spaces. The signature applies datasketch's affine32 permutations in numpy
over all shingles at once, so ``MinHash(num_perm, seed=seed, scheme="affine32", hashfunc=xxh32_intdigest)``
fed the same n-gram strings through ``update_batch`` gives the same hash values (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xxhash
from datasketch import MinHash

from pipeline.normalize import NORMALIZATION_VERSION

SCHEME = "affine32"
_U32 = np.uint32
_EMPTY = np.iinfo(np.uint32).max


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
            f"minhash-{SCHEME}-xxh32-n{self.shingle_size}-p{self.num_perm}-s{self.seed}"
            f"-norm{NORMALIZATION_VERSION}"
        )


def shingles(tokens: list[str], size: int) -> list[str]:
    """Word n-grams joined by a space; a document shorter than ``size`` words is one shingle."""
    if len(tokens) <= size:
        return [" ".join(tokens)] if tokens else []
    return [" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)]


def shingle_hashes(tokens: list[str], size: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the shingles of dedup tokens (the set whose Jaccard we measure)."""
    hashes = [xxhash.xxh32_intdigest(s.encode("utf-8")) for s in shingles(tokens, size)]
    return np.unique(np.array(hashes, dtype=_U32))


class Signer:
    """Computes MinHash signatures with fixed permutations (created once per process)."""

    def __init__(self, config: MinHashConfig) -> None:
        self.config = config
        a, b = MinHash(num_perm=config.num_perm, seed=config.seed, scheme=SCHEME).permutations
        self._a = a.astype(_U32)[:, None]
        self._b = b.astype(_U32)[:, None]

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """MinHash values (uint32, ``num_perm`` long) of a shingle hash set."""
        if hashes.size == 0:
            return np.full(self.config.num_perm, _EMPTY, dtype=_U32)
        mixed = _fmix32(hashes.astype(_U32))
        with np.errstate(over="ignore"):
            return (self._a * mixed[None, :] + self._b).min(axis=1)

    def minhash(self, signature: np.ndarray) -> MinHash:
        """A datasketch MinHash carrying these hash values, for MinHashLSH."""
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
