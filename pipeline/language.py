"""Language identification: the language of each clean text, and the ``--languages`` filter.

The detector is py3langid's model (the one trafilatura itself uses, shipped in py3langid's wheel): a naive
Bayes classifier over byte n-grams, which it finds by walking a byte automaton. py3langid walks it in a
Python loop (0.4 us a byte, ~1 ms for the first 2,000 characters of an article); here a compiled loop
(:func:`pipeline.signature_kernels.language_features`) walks the same automaton and the scores are then
computed as py3langid computes them, bit for bit (``tests/test_language.py`` checks this against
``py3langid`` itself on real articles in ten languages).

Loading the model costs 0.5-1.5 s (it is LZMA-compressed in the wheel) and about 100 MB: a process loads it
once, on first use (:func:`detector`), and a run's parent loads it before it forks its workers, which then
start with it (see :func:`pipeline.run.clean_folder`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.contract import Document, Rejection

# The labels of py3langid 0.4's model (``tests/test_language.py`` checks them against it): ISO 639-1 where
# the language has a code there (de, en, zh ...), else ISO 639-3 (yue, arz, ...); ``zxx``: no linguistic
# content. Kept here so that ``--languages`` is checked without loading the model.
LANGUAGES = frozenset(
    """
    ace af am an ar ary arz as az ba bcl be bg bn br bs ca crh cs cy da de dz el en eo es et eu ext fa fi fo
    fr fuv fy ga gcf gcr gd gl gom grc gu gug guw ha hbo he hi hr ht hu hy id ig is it ja jv ka kab kik kk
    km kn ko ku ky la lb lg lij ln lo lt ltg lv mg mk ml mn mr ms mt my ne nl nn no nso oc om or pa pcm pl
    ps pt qu ro ru rw sa sdh se si sk sl sn so sq sr st sv sw ta te tg th tk tl tr tt ug uk ur uz uzs vec
    vi vo wa wuu xh yo yue zh zu zxx
    """.split()
)


@dataclass(frozen=True, slots=True)
class LanguageConfig:
    """Settings of the language stage.

    Args:
        keep: the languages whose records are kept (codes of ``LANGUAGES``); the others are rejected as
            ``language``. Empty (the default): every language is kept.
        prefix_chars: the language is detected on the first this many characters of the clean text. On
            the extraction benchmark's 181 articles and ten languages of tests/data, 2,000 characters give
            the language of the whole text every time, at a third of the cost of 5,000 (see README,
            "Speed").
    """

    keep: tuple[str, ...] = ()
    prefix_chars: int = 2000

    def __post_init__(self) -> None:
        unknown = sorted(set(self.keep) - LANGUAGES)
        if unknown:
            raise ValueError(
                f"unknown language code(s) {', '.join(unknown)}: the detector (py3langid) gives ISO 639-1 "
                "codes such as de, en, fr, zh (ISO 639-3 for a few languages without one); see README"
            )
        if self.prefix_chars < 1:
            raise ValueError("prefix_chars must be at least 1")
        object.__setattr__(self, "keep", tuple(sorted(set(self.keep))))

    def fingerprint(self) -> str:
        """Names what the records' ``language`` and the language rejections depend on."""
        return f"languages={','.join(self.keep) or 'all'}/{self.prefix_chars}"


def parse_languages(text: str) -> tuple[str, ...]:
    """The codes of a ``--languages`` value (``"de,en"``; spaces and case ignored).

    Raises:
        ValueError: a code the detector does not know.
    """
    codes = tuple(code.strip().lower() for code in text.split(",") if code.strip())
    return LanguageConfig(codes).keep


@dataclass(frozen=True, slots=True)
class Ngrams:
    """The model's n-grams found in a text: their rows in the model, how often each occurs (in the order
    the walk first met them), and the text's length in UTF-8 bytes."""

    features: np.ndarray
    counts: np.ndarray
    size: int


SCRATCH_ROWS = 4096  # table rows a text's scores use at first (grown for a text with more features)


class LanguageDetector:
    """py3langid's model (``norm_probs``: the score is a probability), its automaton walked by a compiled
    loop; :meth:`detect` answers as ``LanguageIdentifier.classify`` does.

    Detecting is two steps, :meth:`ngrams` (the walk over the text's bytes) and :meth:`language` (the
    scores): a batch of texts walked first and scored after keeps the automaton (39 MB) and the table
    (57 MB) in the processor's caches better than both steps in turn between a document's other stages.
    """

    def __init__(self) -> None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier  # noqa: PLC0415 - see detector()

        model = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self.labels: list[str] = list(model.nb_classes)
        # features x classes: float16 in the model (28 MB), float32 here (57 MB): py3langid's product
        # converts the rows it uses for every text, 300 of the 500 us a text would cost.
        self.table: np.ndarray = model.nb_ptc.astype(np.float32)
        self.prior: np.ndarray = model.nb_pc
        moves = model.tk_nextmove
        self.nextmove = np.frombuffer(moves, dtype=np.dtype(moves.typecode)).astype(np.uint32, copy=False)
        self.rowbase = np.asarray(model.tk_row, dtype=np.int64) << 8
        self.output = np.asarray(model.tk_output, dtype=np.int32)
        # Labels that appear twice in the model (srl -> sr): py3langid adds the second column to the first.
        self.aliases: list[tuple[int, int]] = list(model._alias_pairs)
        self._local = threading.local()
        self.encode: Any = model._encode  # upper-case text lowered, NFC, UTF-8: as py3langid reads text

    def _scratch(self) -> threading.local:
        """This thread's scratch arrays (the flow's tasks share the detector across threads): ``seen``,
        the walk's per-feature counts, and ``rows``, the table's rows a text has. Reused, not allocated
        for every text: 3,000 bench texts detect in 1.01 s with them, 1.30 s with fresh arrays; under the
        fixed malloc thresholds Dask's nannies set, each fresh array was also mapped and unmapped (3.8 ms a
        text there before :func:`pipeline.cluster.warm_up` undid them)."""
        scratch = self._local
        if not hasattr(scratch, "seen"):
            scratch.seen = np.zeros(len(self.table), dtype=np.int32)
            scratch.rows = np.empty((SCRATCH_ROWS, self.table.shape[1]), dtype=self.table.dtype)
        return scratch

    def detect(self, text: str) -> tuple[str | None, float]:
        """The most likely language of ``text`` and its probability (see :meth:`language`)."""
        return self.language(self.ngrams(text))

    def ngrams(self, text: str) -> Ngrams:
        """The model's n-grams in ``text`` (py3langid's ``visit_counts``, compiled)."""
        from pipeline.signature_kernels import language_features  # noqa: PLC0415 - numba, see detector()

        data = self.encode(text)
        scratch = self._scratch()
        features, counts = language_features(
            np.frombuffer(data, dtype=np.uint8), self.nextmove, self.rowbase, self.output, scratch.seen
        )
        return Ngrams(features, counts, len(data))

    def language(self, found: Ngrams) -> tuple[str | None, float]:
        """The most likely language of a text whose n-grams are ``found``, and its probability;
        ``(None, 0.0)`` when it holds none (py3langid names an arbitrary language at a uniform score)."""
        if not found.features.size:
            return None, 0.0
        # py3langid's _sparse_score and _decide with norm_probs, in its order: the same floats.
        n = found.features.size
        scratch = self._scratch()
        if scratch.rows.shape[0] < n:
            scratch.rows = np.empty((n, self.table.shape[1]), dtype=self.table.dtype)
        # mode "clip": with the default "raise", numpy fills a buffer of its own and copies it into out
        rows = np.take(self.table, found.features, axis=0, out=scratch.rows[:n], mode="clip")
        scores = np.log1p(found.counts) @ rows + self.prior
        scores *= 1.0 / math.sqrt(found.size)  # its softmax temperature: the square root of the bytes
        np.exp(scores - scores.max(), out=scores)
        scores /= scores.sum()
        for first, second in self.aliases:
            scores[first] += scores[second]
            scores[second] = 0.0
        best = int(scores.argmax())
        return self.labels[best], float(scores[best])


_detector: LanguageDetector | None = None
_loading = threading.Lock()


def detector() -> LanguageDetector:
    """The process's detector, loaded on first use (0.5-1.5 s, about 100 MB), once: a read-only model, so
    sharing it changes no result. The lock serves the clean-folder flow, whose tasks run in threads."""
    global _detector
    with _loading:
        if _detector is None:
            _detector = LanguageDetector()
        return _detector


def identify_language(
    doc: Document, config: LanguageConfig, model: LanguageDetector, ngrams: Ngrams | None = None
) -> Document | Rejection:
    """Set ``doc.language`` from the first ``config.prefix_chars`` characters of its clean text; reject
    it (``language``, naming what was detected and its score) when ``config.keep`` names other languages.

    ``ngrams``: the prefix's :meth:`LanguageDetector.ngrams`, when the caller walked it already.
    """
    language, score = model.language(ngrams or model.ngrams(doc.body[: config.prefix_chars]))
    doc.language = language
    if config.keep and language not in config.keep:
        detected = f"{language} (score {score:.2f})" if language else "no language (no n-gram of the model)"
        return Rejection(
            doc.source,
            "language",
            f"detected {detected}, not one of --languages {','.join(config.keep)}",
            stage="language",
        )
    return doc
