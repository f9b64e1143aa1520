"""Tests for pipeline/signature.py: datasketch compatibility, shingles and similarity measures."""

from __future__ import annotations

import numpy as np
import pytest
import xxhash
from datasketch import MinHash, MinHashLSH

from pipeline.normalize import dedup_tokens
from pipeline.signature import MinHashConfig, Signer, containment, jaccard, shingle_hashes, shingles
from tests.corpus import benchmark_articles


@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_signature_is_bit_identical_to_datasketch_update_batch(num_perm: int):
    text = benchmark_articles(1)[0].body
    tokens = dedup_tokens(text)
    reference = MinHash(num_perm=num_perm, seed=1, scheme="affine32", hashfunc=xxhash.xxh32_intdigest)
    reference.update_batch([s.encode("utf-8") for s in shingles(tokens, 5)])
    ours = Signer(MinHashConfig(num_perm=num_perm)).signature(shingle_hashes(tokens, 5))
    assert ours.dtype == np.uint32
    assert np.array_equal(ours, reference.hashvalues)


def test_signatures_go_into_datasketch_lsh():
    signer = Signer(MinHashConfig())
    articles = benchmark_articles(5)
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for n, article in enumerate(articles):
        lsh.insert(n, signer.minhash(signer.signature(shingle_hashes(dedup_tokens(article.body), 5))))
    query = signer.minhash(signer.signature(shingle_hashes(dedup_tokens(articles[2].body), 5)))
    assert lsh.query(query) == [2]


def test_short_text_is_one_shingle_and_empty_text_none():
    assert shingles(["a", "b"], 5) == ["a b"]
    assert shingles([], 5) == []
    assert shingles(list("abcdef"), 5) == ["a b c d e", "b c d e f"]


def test_jaccard_and_containment():
    a = np.array([1, 2, 3, 4], dtype=np.uint32)
    b = np.array([3, 4, 5, 6], dtype=np.uint32)
    assert jaccard(a, b) == pytest.approx(2 / 6)
    assert containment(a[:2], a) == 1.0
    assert jaccard(a, a) == 1.0


@pytest.mark.parametrize(
    "kwargs", [{"threshold": 0}, {"threshold": 1.5}, {"shingle_size": 0}, {"num_perm": 8}, {"containment": 0}]
)
def test_config_validation(kwargs):
    with pytest.raises(ValueError):
        MinHashConfig(**kwargs)


def test_fingerprint_names_the_configuration():
    assert MinHashConfig().fingerprint() != MinHashConfig(num_perm=256).fingerprint()
    assert "affine32" in MinHashConfig().fingerprint()
