"""A deterministic corpus of scraped news articles made of real text, with edited syndicated copies.

The text is real: sentences of the articles in ``../shared/data`` (the article-extraction-benchmark's
reference bodies, and the main text of trafilatura's evaluation pages), grouped by the language their page
declares (``<html lang>``), typography untouched. Each generated article is in one language (languages in the
proportions the sets hold them; a language with under ``MIN_LANGUAGE_CHARS`` of text is left out, its articles
would repeat each other), its length drawn from the lengths of the real articles (1 to 8 KB), its paragraphs
made of one to four real sentences. Each file carries its site's scraped boilerplate: navigation, the title
twice (once with the site's name), a byline, a share row, a cookie notice, the site's own tagline (no shipped
list knows it: it is learned from the corpus), "The post ... appeared first on ...", "Exit mobile version".

A share of the files (``copy_share``, 20%) are syndicated copies of an earlier article on another site of its
language, edited the way syndication edits: an exact copy, a few words changed, a paragraph or an update line
added, or the copy cut short. ``generate`` returns which files are copies of which, so the bench prints dedup
quality beside its speed.

The sentence pool is built once per source folder and cached (``pool(cache)``: reading the evaluation set's
pages takes trafilatura about 25 s).
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import io
import json
import re
import tarfile
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ARTICLE_BENCHMARK = DATA / "article-extraction-benchmark"
TRAFILATURA_EVAL = DATA / "trafilatura-eval"
MIN_LANGUAGE_CHARS = 20_000
SITES_PER_LANGUAGE = 4
# Article lengths are drawn from the real articles' (bytes of text) within these bounds: shorter ones are
# mostly pages that are not articles, the longest few would dominate the corpus's size.
MIN_LENGTH, MAX_LENGTH = 1_000, 8_000
# A sentence ends at . ! ? … or their CJK forms followed by white space; text without them is one sentence.
SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+")
HTML_LANG = re.compile(rb"<html[^>]*?\slang\s*=\s*[\"']?([A-Za-z]{2,3})\b", re.I)

# Scraped boilerplate shapes (as the tests' syndicated corpus and real scraped pages have them).
HEADERS = (
    ("Skip to content", "{site} | Home | News | Sport"),
    ("Menu", "Search"),
    ("Jump to navigation",),
    (),
)
FOOTERS = (
    ("Share this:", "Twitter", "Facebook", "Like this:", "Like Loading..."),
    ("The post {title} appeared first on {site}.", "Exit mobile version"),
    (
        "Sign up for our daily newsletter to get the latest stories in your inbox.",
        "© 2024 {site}. All rights reserved.",
    ),
    (
        "We use cookies to ensure that we give you the best experience on our website.",
        "Leave a Reply",
        "Your email address will not be published. Required fields are marked *",
    ),
)
TAGLINE = "{site} is reader-supported and has covered its region since {year}"
BYLINES = ("By {author} | {date}", "Posted on {date} by {author}", "{date}", "")
AUTHORS = (
    "Jane Doe",
    "Jörg Müller",
    "María García",
    "Wei Chen",
    "Amara Okafor",
    "Łukasz Nowak",
    "Zoë Dubois",
)
# Bylines date an article within three years, written in one of these forms (English month names: the
# others are the page's language's).
DATE_FORMATS = ("%B %d, %Y", "%d.%m.%Y", "%Y-%m-%d", "%d %b %Y %H:%M", "%b %d, %Y %I:%M %p")
FIRST_DAY = datetime.date(2022, 1, 1)
UPDATE_LINES = ("Update: this article has been updated with additional reporting.", "(Updated)")


def language_of(page: bytes) -> str:
    """The primary language tag a page declares (``<html lang="de-DE">`` -> ``de``), '' when none."""
    found = HTML_LANG.search(page[:20_000])
    return found.group(1).decode("ascii").lower() if found else ""


def _benchmark_texts(folder: Path) -> list[tuple[str, str]]:
    """(language, reference body) of each article-extraction-benchmark page."""
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    texts = []
    for key in sorted(truth):
        page = folder / "html" / f"{key}.html.gz"
        language = language_of(gzip.decompress(page.read_bytes())) if page.exists() else ""
        texts.append((language, truth[key]["articleBody"]))
    return texts


def _evaluation_texts(folder: Path) -> list[tuple[str, str]]:
    """(language, main text) of each page of trafilatura's evaluation set, read with trafilatura."""
    import trafilatura

    archive = folder / "html_tests_eval_cache.tar.gz"
    if not archive.exists():
        return []
    texts = []
    with tarfile.open(archive) as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not member.isfile() or not member.name.endswith((".html", ".htm")):
                continue
            page = tar.extractfile(member).read()  # type: ignore[union-attr]
            text = trafilatura.extract(
                io.BytesIO(page).read().decode("utf-8", "replace"), deduplicate=False, favor_precision=True
            )
            if text:
                texts.append((language_of(page), text))
    return texts


def sentences(text: str) -> list[str]:
    """The sentences of ``text``'s paragraphs (lines), white space inside each collapsed."""
    found = []
    for line in text.splitlines():
        for sentence in SENTENCE_END.split(line.strip()):
            sentence = " ".join(sentence.split())
            if len(sentence) >= 20:
                found.append(sentence)
    return found


def pool(cache: Path, benchmark: Path = ARTICLE_BENCHMARK, evaluation: Path = TRAFILATURA_EVAL) -> dict:
    """``{"sentences": {language: [...]}, "lengths": [...]}`` of the real articles, cached in ``cache``."""
    key = f"{benchmark.resolve()}|{evaluation.resolve()}"
    path = cache / "real-text-pool.json"
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored.get("key") == key:
            return stored
    texts = _benchmark_texts(benchmark) + _evaluation_texts(evaluation)
    by_language: dict[str, list[str]] = {}
    for language, text in texts:
        if language:
            by_language.setdefault(language, []).extend(sentences(text))
    kept = {
        language: found
        for language, found in sorted(by_language.items())
        if sum(len(s) for s in found) >= MIN_LANGUAGE_CHARS
    }
    lengths = sorted(len(text.encode("utf-8")) for language, text in texts if language in kept)
    stored = {"key": key, "sentences": kept, "lengths": [n for n in lengths if MIN_LENGTH <= n <= MAX_LENGTH]}
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stored, ensure_ascii=False), encoding="utf-8")
    return stored


class Writer:
    """Draws articles from the pool with one seeded generator."""

    def __init__(self, stored: dict, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.sentences = stored["sentences"]
        self.languages = sorted(self.sentences)
        sizes = np.array([sum(len(s) for s in self.sentences[lang]) for lang in self.languages], dtype=float)
        self.weights = sizes / sizes.sum()
        self.lengths = stored["lengths"]

    def pick(self, items: list | tuple):  # type: ignore[no-untyped-def]
        return items[int(self.rng.integers(len(items)))]

    def date(self) -> str:
        day = FIRST_DAY + datetime.timedelta(days=int(self.rng.integers(3 * 365)))
        when = datetime.datetime.combine(
            day, datetime.time(int(self.rng.integers(24)), int(self.rng.integers(60)))
        )
        return when.strftime(self.pick(DATE_FORMATS))

    def paragraph(self, language: str) -> str:
        return " ".join(self.pick(self.sentences[language]) for _ in range(int(self.rng.integers(1, 5))))

    def article(self, language: str) -> tuple[str, list[str]]:
        """A title and paragraphs in ``language``, about as long as a real article."""
        target = self.pick(self.lengths)
        paragraphs: list[str] = []
        size = 0
        while size < target:
            paragraphs.append(self.paragraph(language))
            size += len(paragraphs[-1].encode("utf-8")) + 2
        title = self.pick(self.sentences[language]).rstrip(".!?…")
        if len(title) > 90:
            title = title[:90].rsplit(" ", 1)[0]
        return title, paragraphs

    def edited(self, language: str, paragraphs: list[str]) -> tuple[str, list[str]]:
        """A syndicated copy's edit: exact, words changed, a paragraph or update line added, cut short."""
        kind = self.pick(("exact", "words", "added", "cut"))
        copy = list(paragraphs)
        if kind == "words":
            words = "\n\n".join(copy).split(" ")
            for _ in range(max(1, len(words) // int(self.rng.integers(60, 150)))):
                replacement = self.pick(self.pick(self.sentences[language]).split(" "))
                words[int(self.rng.integers(len(words)))] = replacement
            copy = " ".join(words).split("\n\n")
        elif kind == "added":
            position = int(self.rng.integers(len(copy) + 1))
            copy.insert(
                position, self.paragraph(language) if self.rng.random() < 0.5 else self.pick(UPDATE_LINES)
            )
        elif kind == "cut" and len(copy) > 3:
            copy = copy[: max(3, round(len(copy) * float(self.rng.uniform(0.8, 0.9))))] + ["Continue reading"]
        return kind, copy


def scraped(site: str, number: int, title: str, paragraphs: list[str], writer: Writer) -> str:
    """The text a generic scraper saves for an article on ``site`` (site ``number`` picks its shapes)."""
    lines = [line.format(site=site) for line in HEADERS[number % len(HEADERS)]]
    lines += [f"{title} | {site}", title]
    byline = BYLINES[number % len(BYLINES)]
    if byline:
        lines.append(byline.format(author=writer.pick(AUTHORS), date=writer.date()))
    lines += paragraphs
    lines.append(TAGLINE.format(site=site, year=1990 + number))
    lines += [line.format(site=site, title=title) for line in FOOTERS[number % len(FOOTERS)]]
    return "\n\n".join(lines) + "\n"


def generate(
    root: Path,
    count: int,
    seed: int = 0,
    copy_share: float = 0.2,
    start: int = 0,
    sentences: dict | None = None,
) -> tuple[int, dict[str, str]]:
    """Write ``count`` articles under ``root`` (numbered from ``start``), from ``sentences`` (a
    :func:`pool`; by default the one of ``../shared/data``, cached beside ``root``).

    Returns the bytes written and each file's cluster (its path relative to ``root`` -> the path of the
    original it copies, or its own).
    """
    writer = Writer(sentences or pool(root.parent), seed)
    originals: list[tuple[str, int, str, str, list[str]]] = []  # (path, site, language, title, paragraphs)
    clusters: dict[str, str] = {}
    written = 0
    for n in range(start, start + count):
        if originals and writer.rng.random() < copy_share:
            cluster, first_site, language, title, paragraphs = writer.pick(originals)
            _, paragraphs = writer.edited(language, paragraphs)
            number = (first_site + int(writer.rng.integers(1, SITES_PER_LANGUAGE))) % SITES_PER_LANGUAGE
        else:
            language = str(writer.rng.choice(writer.languages, p=writer.weights))
            title, paragraphs = writer.article(language)
            cluster = ""
            number = int(writer.rng.integers(SITES_PER_LANGUAGE))
        site = f"{language}-site{number}"
        relative = f"{site}/{n:07d}.txt"
        if not cluster:
            cluster = relative
            if len(originals) < 5000:
                originals.append((relative, number, language, title, paragraphs))
        text = scraped(site, number, title, paragraphs, writer)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        clusters[relative] = cluster
        written += len(text.encode("utf-8"))
    return written, clusters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--copy-share", type=float, default=0.2)
    args = parser.parse_args()
    written, clusters = generate(args.root, args.count, args.seed, args.copy_share, args.start)
    copies = sum(1 for path, cluster in clusters.items() if path != cluster)
    print(f"{args.count} files ({copies} copies), {written / 1e6:.1f} MB under {args.root}")


if __name__ == "__main__":
    main()
