"""Tests for pipeline/language.py: the detector against py3langid itself, the stage and its filter."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from py3langid.langid import MODEL_FILE, LanguageIdentifier, visit_counts

from pipeline import signature_kernels as kernels
from pipeline.contract import Document, Rejection
from pipeline.language import LANGUAGES, LanguageConfig, detector, identify_language, parse_languages
from tests.corpus import DATA, SAMPLE_BENCHMARK

# One page a language, as scraped (tests/data/cleanup), with the language each is written in.
PAGES = {
    "dutch": "nl",
    "french": "fr",
    "german": "de",
    "italian": "it",
    "polish": "pl",
    "portuguese": "pt",
    "russian": "ru",
    "spanish": "es",
    "wordpress": "en",
}


def _texts() -> list[str]:
    """Real article texts: the benchmark sample's bodies (80, most English, some Portuguese, Russian,
    Japanese, Korean, Indonesian ...) and the cleanup pages in eight more languages."""
    truth = json.loads((SAMPLE_BENCHMARK / "ground-truth.json").read_text(encoding="utf-8"))
    bodies = [page["articleBody"] for page in truth.values() if page["articleBody"]]
    return bodies + [(DATA / "cleanup" / f"{name}.out.txt").read_text(encoding="utf-8") for name in PAGES]


@pytest.fixture(scope="module")
def reference() -> LanguageIdentifier:
    """py3langid's own classifier, as trafilatura builds it (probabilities)."""
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def test_the_codes_are_the_models_labels(reference: LanguageIdentifier) -> None:
    """``LANGUAGES`` (what --languages accepts without loading the model) is what the model can say."""
    assert set(reference.labels) == LANGUAGES


@pytest.mark.parametrize("prefix", [2000, None])
def test_detect_is_py3langid_classify_bit_for_bit(reference: LanguageIdentifier, prefix: int | None) -> None:
    """The compiled walk and the float32 table give py3langid's answer and its very probability."""
    found = detector()
    for text in _texts():
        text = text[:prefix]
        assert found.detect(text) == reference.classify(text), text[:80]


def test_each_language_is_detected() -> None:
    found = detector()
    for name, code in PAGES.items():
        text = (DATA / "cleanup" / f"{name}.out.txt").read_text(encoding="utf-8")
        language, score = found.detect(text[:2000])
        assert (name, language) == (name, code) and score > 0.9


def test_a_text_without_any_ngram_of_the_model_has_no_language(reference: LanguageIdentifier) -> None:
    """py3langid names an arbitrary language at a uniform score for a text it finds nothing in (``sr``
    at 2/142: its columns are uniform, and sr has two): we say none."""
    assert reference.classify("$$$ ### ...") == ("sr", pytest.approx(2 / 142))
    assert detector().detect("$$$ ### ...") == (None, 0.0)
    assert detector().detect("") == (None, 0.0)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
@example("Der Bundestag hat am Donnerstag das Gesetz beschlossen.")
@example("\ud83d broken surrogate")
def test_the_compiled_walk_is_visit_counts(text: str) -> None:
    """Features and counts in the order py3langid's ``Counter`` holds them, for any text."""
    found = detector()
    data = found.encode(text)
    scratch = np.zeros(len(found.table), dtype=np.int32)
    features, counts = kernels.language_features(
        np.frombuffer(data, dtype=np.uint8), found.nextmove, found.rowbase, found.output, scratch
    )
    assert not scratch.any()  # left zeroed for the next text
    visits = visit_counts(found.nextmove, list(found.rowbase), found.output, data) or {}
    assert features.tolist() == list(visits.keys())
    assert counts.tolist() == [float(n) for n in visits.values()]


def test_identify_language_sets_the_field_and_keeps_every_language_by_default() -> None:
    text = (DATA / "cleanup" / "german.out.txt").read_text(encoding="utf-8")
    doc = identify_language(Document("a.txt", text), LanguageConfig(), detector())
    assert isinstance(doc, Document) and doc.language == "de"


def test_a_language_not_kept_is_rejected_with_the_detected_language_and_score() -> None:
    text = (DATA / "cleanup" / "german.out.txt").read_text(encoding="utf-8")
    result = identify_language(Document("a.txt", text), LanguageConfig(keep=("en", "fr")), detector())
    assert isinstance(result, Rejection)
    assert (result.reason, result.stage) == ("language", "language")
    assert result.detail.startswith("detected de (score 1.00), not one of --languages en,fr")
    kept = identify_language(Document("b.txt", text), LanguageConfig(keep=("de",)), detector())
    assert isinstance(kept, Document) and kept.language == "de"


def test_languages_option_is_checked_and_tidied() -> None:
    assert parse_languages(" EN,de ,, fr") == ("de", "en", "fr")
    assert parse_languages("") == ()
    with pytest.raises(ValueError, match="unknown language code.*english"):
        parse_languages("en,english")
    with pytest.raises(ValueError, match="prefix_chars"):
        LanguageConfig(prefix_chars=0)


def test_the_fingerprint_names_the_languages_kept() -> None:
    assert LanguageConfig().fingerprint() == "languages=all/2000"
    assert LanguageConfig(keep=("en", "de")).fingerprint() == "languages=de,en/2000"


def test_the_model_is_loaded_once_per_process() -> None:
    assert detector() is detector()


def test_prefix_gives_the_language_of_the_whole_text() -> None:
    """The 2,000 characters detected on give the whole text's language on every real text here."""
    found = detector()
    for text in _texts():
        assert found.detect(text[:2000])[0] == found.detect(text)[0], text[:80]


def test_module_needs_no_model_to_import(tmp_path: Path) -> None:
    """Importing the stage (the CLI does, for its options) loads neither numba nor the model."""
    import subprocess
    import sys

    code = (
        "import sys, pipeline.language, pipeline.cli; "
        "print('numba' in sys.modules, pipeline.language._detector is None)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
