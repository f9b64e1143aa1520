"""Tests for pipeline/signature_kernels.py: each compiled loop against the plain definition it replaces."""

from __future__ import annotations

import numpy as np
import xxhash
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline import signature_kernels as kernels
from pipeline.signature import key_shingles, shingle_hash, shingles

# Words as the dedup key holds them: any bytes but the space (UTF-8 of letters and digits in practice).
WORD = st.binary(min_size=1, max_size=40).map(lambda b: b.replace(b" ", b"x"))
DOCUMENT = st.lists(WORD, max_size=30)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=100))
def test_xxh32_is_xxhash(data: bytes) -> None:
    assert kernels.xxh32(np.frombuffer(data, dtype=np.uint8), 0, len(data)) == xxhash.xxh32_intdigest(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(DOCUMENT, max_size=12), st.integers(1, 7), st.sampled_from([b" ", b"  ", b"   "]))
@example([[b"a"], [b"b"], [b"c"]], 5, b" ")  # one-byte documents: as many words as bytes
@example([[], [b"x", b"y"], []], 5, b" ")
def test_key_shingles_are_the_plain_shingle_hashes(
    documents: list[list[bytes]], size: int, gap: bytes
) -> None:
    # Keys with any run of spaces between words, and at the ends, as dedup_key leaves them.
    keys = [gap + gap.join(words) + gap if words else gap for words in documents]
    packed, offsets, words = key_shingles(keys, size)

    for i, tokens in enumerate(documents):
        plain = np.unique(np.array([shingle_hash(s) for s in shingles(tokens, size)], dtype=np.uint32))
        assert np.array_equal(packed[offsets[i] : offsets[i + 1]], plain)
        assert words[i] == len(tokens)


SORTED_SET = st.lists(st.integers(0, 60), unique=True).map(lambda v: np.array(sorted(v), dtype=np.uint32))


@settings(max_examples=500, deadline=None)
@given(SORTED_SET, SORTED_SET)
def test_common_is_the_intersection_size(a: np.ndarray, b: np.ndarray) -> None:
    assert kernels.common(a, b) == np.intersect1d(a, b, assume_unique=True).size


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, (1 << 32) - 1), max_size=300))
def test_radix_sort_is_a_sort(values: list[int]) -> None:
    array = np.array(values, dtype=np.uint32)
    assert np.array_equal(kernels._radix_sort(array), np.sort(array))
