"""Tests for pipeline/signature.py: datasketch compatibility, shingles and similarity measures."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH

from pipeline.normalize import dedup_token_bytes
from pipeline.signature import (
    LSH_MARGIN,
    MinHashConfig,
    Signer,
    containment,
    jaccard,
    lsh_bands,
    shingle_hash,
    shingle_hashes,
    shingles,
)
from tests.corpus import benchmark_articles


@pytest.mark.parametrize(("num_perm", "seed"), [(64, 1), (128, 1), (256, 1), (128, 7)])
def test_signature_is_bit_identical_to_datasketch_update_batch(num_perm: int, seed: int):
    text = benchmark_articles(1)[0].body
    tokens = dedup_token_bytes(text)
    reference = MinHash(num_perm=num_perm, seed=seed, scheme="affine32", hashfunc=shingle_hash)
    reference.update_batch(shingles(tokens, 5))
    ours = Signer(MinHashConfig(num_perm=num_perm, seed=seed)).signature(shingle_hashes(tokens, 5))
    assert ours.dtype == np.uint32
    assert np.array_equal(ours, reference.hashvalues)


@pytest.mark.parametrize(
    ("threshold", "num_perm"), [(0.8, 128), (0.5, 128), (0.9, 64), (0.6, 16), (0.75, 256), (1.0, 100)]
)
def test_lsh_bands_are_datasketch_minhashlsh_choice(threshold: float, num_perm: int):
    config = MinHashConfig(threshold=threshold, num_perm=num_perm)
    lsh = MinHashLSH(threshold=max(0.3, threshold - LSH_MARGIN), num_perm=num_perm)
    assert lsh_bands(config) == lsh.hashranges


def test_signatures_go_into_datasketch_lsh():
    signer = Signer(MinHashConfig())
    articles = benchmark_articles(5)
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for n, article in enumerate(articles):
        lsh.insert(n, signer.minhash(signer.signature(shingle_hashes(dedup_token_bytes(article.body), 5))))
    query = signer.minhash(signer.signature(shingle_hashes(dedup_token_bytes(articles[2].body), 5)))
    assert lsh.query(query) == [2]


def test_short_text_is_one_shingle_and_empty_text_none():
    assert shingles([b"a", b"b"], 5) == [b"a b"]
    assert shingles([], 5) == []
    assert shingles([c.encode() for c in "abcdef"], 5) == [b"a b c d e", b"b c d e f"]


def test_jaccard_and_containment():
    a = np.array([1, 2, 3, 4], dtype=np.uint32)
    b = np.array([3, 4, 5, 6], dtype=np.uint32)
    assert jaccard(a, b) == pytest.approx(2 / 6)
    assert containment(a[:2], a) == 1.0
    assert jaccard(a, a) == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0},
        {"threshold": 1.5},
        {"shingle_size": 0},
        {"num_perm": 8},
        {"containment": 0},
        {"rewrite_threshold": 0},
        {"rewrite_threshold": 1.2},
        {"names_tolerance": 1.0},
        {"names_tolerance": -0.1},
        {"min_names": 0},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        MinHashConfig(**kwargs)


def test_fingerprint_names_the_configuration():
    assert MinHashConfig().fingerprint() != MinHashConfig(num_perm=256).fingerprint()
    assert "affine32" in MinHashConfig().fingerprint()
    assert "-names1" in MinHashConfig().fingerprint()  # the stored name sets' definition (NAMES_VERSION)


def test_short_documents_and_word_order():
    """A text shorter than the shingle size is one shingle; n-grams are ordered."""
    assert shingle_hashes([b"a", b"b"], 5).size == 1
    assert shingle_hashes([b"a", b"b"], 5)[0] == shingle_hash(b"a b")
    assert shingle_hash(b"a b c d e") != shingle_hash(b"e d c b a")
    assert shingle_hashes([], 5).size == 0
