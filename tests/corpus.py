"""Generated corpora with known truth, built from real article bodies.

``syndicated_corpus`` publishes real articles (the article-extraction-benchmark ground truth) on several
synthetic sites, each wrapping the body in its own scraped boilerplate (navigation, repeated titles with a
site suffix, bylines, share widgets, newsletter prompts, "The post ... appeared first on ...", related-link
blocks, site-specific footers that no shipped list knows), and perturbs copies the way syndication does:
exact copies, a few edited words plus an added line, typographic variants, mojibake, and copies cut short
with "Continue reading". Distinct short articles written from one template are mixed in; they must stay
apart. Every file's true cluster and expected clean body are returned.

``rewrite_corpus`` pairs each real article, and each templated brief, with a light rewrite of it: one word
in forty replaced by another word of the corpus's vocabulary (``light_rewrite``). The rewrites are copies;
the briefs must still stay apart from each other, also police briefs that differ only in their names and
figures (``police_briefs``).
"""

from __future__ import annotations

import gzip
import html
import json
import random
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

from pipeline import contract
from pipeline.index import DATA_DIR, INDEX_FILE
from pipeline.lock import LOCK_FILE

DATA = Path(__file__).resolve().parent / "data"
SEED = DATA / "seed" / "ukraine-atacms.txt"
# The tests use the 80-page sample in tests/data; `make eval` the full 181 pages in ../shared/data.
SAMPLE_BENCHMARK = DATA / "article-extraction-benchmark"
FULL_BENCHMARK = Path(__file__).resolve().parents[2] / "shared" / "data" / "article-extraction-benchmark"
# trafilatura's evaluation set: the tests use a sample (tests/data/trafilatura-eval: its evaldata.json and
# the pages gzipped), `make eval` the 990 pages of the tarball in ../shared/data.
SAMPLE_SNIPPETS = DATA / "trafilatura-eval"
FULL_SNIPPETS = FULL_BENCHMARK.parent / "trafilatura-eval"
SNIPPETS_TARBALL = "html_tests_eval_cache.tar.gz"


def snippet_pages(source: Path, raw: Path, limit: int | None = None) -> dict[str, dict]:
    """Write the pages of trafilatura's evaluation set (or of its sample) into ``raw``; return its items
    (``{"file", "with", "without"}``) by file name, sorted, the first ``limit`` of them."""
    items = json.loads((source / "evaldata.json").read_text(encoding="utf-8"))
    wanted = dict(sorted((item["file"], item) for item in items.values())[:limit])
    raw.mkdir(parents=True, exist_ok=True)
    tarball = source / SNIPPETS_TARBALL
    if tarball.exists():
        with tarfile.open(tarball) as archive:
            for member in archive:
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted and not (raw / name).exists():
                    (raw / name).write_bytes(archive.extractfile(member).read())  # type: ignore[union-attr]
    else:
        for name in wanted:
            (raw / name).write_bytes(gzip.decompress((source / "pages" / f"{name}.gz").read_bytes()))
    return wanted


@dataclass(frozen=True)
class Article:
    key: str
    title: str
    body: str  # paragraphs separated by blank lines


@dataclass(frozen=True)
class Site:
    name: str
    host: str
    folder: str
    header: tuple[str, ...]
    footer: tuple[str, ...]
    own_footer: str  # site-specific line no shipped list knows; must be learned from the corpus
    suffix_style: str
    byline: str
    inline_ads: bool


SITES = (
    Site(
        "Daily Ledger",
        "dailyledger.example",
        "dailyledger",
        ("Skip to content", "Home | World | Business | Tech"),
        ("Share this:", "Twitter", "Facebook", "Like this:", "Like Loading..."),
        "Tips? Write to the Daily Ledger desk at tips@dailyledger.example",
        " | ",
        "By {author} | {date}",
        True,
    ),
    Site(
        "Metro Wire",
        "metrowire.example",
        "metrowire",
        ("Menu", "Search"),
        ("The post {title} appeared first on Metro Wire.",),
        "Metro Wire is reader-supported and independent since 1998",
        " – ",
        "Posted on {date} by {author}",
        False,
    ),
    Site(
        "The Observer Post",
        "observerpost.example",
        "observerpost",
        (),
        ("Related", "{other1}", "{other2}", "Exit mobile version"),
        "The Observer Post newsroom can be reached around the clock on 555-0199",
        " - ",
        "{date}",
        True,
    ),
    Site(
        "Coastline News",
        "coastline.example",
        "coastline",
        ("Jump to navigation",),
        (
            "Sign up for our daily newsletter to get the latest stories in your inbox.",
            "© 2024 Coastline News. All rights reserved.",
        ),
        "Coastline News covers the coast from Harbor Point to Gull Bay",
        " | ",
        "By {author}",
        False,
    ),
    Site(
        "Northern Herald",
        "northernherald.example",
        "northernherald",
        (),
        (
            "Leave a Reply",
            "Your email address will not be published. Required fields are marked *",
            "Comment *",
            "Name *",
            "Email *",
        ),
        "Northern Herald reporters contributed to this article via the regional wire",
        " » ",
        "",
        True,
    ),
    Site(
        "Valley Times",
        "valleytimes.example",
        "valleytimes",
        ("Valley Times", "Latest Local Opinion Obituaries"),
        ("Listen to this article", "Print", "Email"),
        "Valley Times thanks its members for keeping local reporting alive",
        "",
        "Updated {date}",
        False,
    ),
)

AUTHORS = ("Jane Doe", "John Smith", "Maria Garcia", "Wei Chen", "Amara Okafor", "Lars Nilsson")
DATES = ("November 19, 2024", "March 3, 2023", "July 14, 2022", "January 8, 2024", "September 30, 2021")


def benchmark_articles(limit: int | None = None, benchmark: Path = SAMPLE_BENCHMARK) -> list[Article]:
    """Real article bodies and page titles from the article-extraction-benchmark (sorted by id)."""
    truth = json.loads((benchmark / "ground-truth.json").read_text(encoding="utf-8"))
    articles = []
    for key in sorted(truth)[:limit]:
        raw = gzip.decompress((benchmark / "html" / f"{key}.html.gz").read_bytes()).decode("utf-8", "replace")
        found = re.search(r"<title[^>]*>(.*?)</title>", raw, re.S | re.I)
        title = html.unescape(found.group(1)).strip() if found else ""
        title = re.split(r"\s+[|–—-]\s+", " ".join(title.split()))[0]
        body = truth[key]["articleBody"].strip()
        if title and len(body) > 300:
            articles.append(Article(key, title, body))
    return articles


def _typographic_variant(text: str) -> str:
    swapped = (
        text.replace("\u2019", "'")
        .replace("\u2018", "'")
        .replace("\u201c", '"')
        .replace("\u201d", '"')
        .replace("\u2014", "--")
        .replace(". ", ".  ")
    )
    return swapped.replace(" the ", " the\u00a0", 3)


def _mojibake(text: str) -> str:
    """UTF-8 read as Windows-1252, as browsers and scrapers do it (bytes 1252 lacks pass through as C1)."""
    import ftfy.bad_codecs  # noqa: F401  registers "sloppy-windows-1252"

    return text.encode("utf-8").decode("sloppy-windows-1252")


def _edit(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    for _ in range(3):
        i = rng.randrange(len(words))
        if words[i].isalpha():
            words[i] = words[i].upper() if rng.random() < 0.5 else words[i] + "s"
    return " ".join(words) + "\n\nThis article has been updated with additional reporting."


def _truncate(text: str) -> str:
    paragraphs = text.split("\n\n")
    keep = max(1, int(len(paragraphs) * 0.6))
    return "\n\n".join(paragraphs[:keep])


def scraped_text(
    article: Article, body: str, site: Site, rng: random.Random, others: list[str], truncated: bool = False
) -> str:
    """The text a generic scraper saves for ``body`` on ``site``."""
    author, date = rng.choice(AUTHORS), rng.choice(DATES)
    lines = list(site.header)
    lines.append(article.title + site.suffix_style + site.name if site.suffix_style else article.title)
    lines.append(article.title)
    if site.byline:
        lines.append(site.byline.format(author=author, date=date))
    paragraphs = body.split("\n\n")
    if site.inline_ads and len(paragraphs) > 4:
        paragraphs.insert(len(paragraphs) // 2, "Advertisement")
    lines.extend(paragraphs)
    if truncated:
        lines.append("Continue reading")
    lines.append(site.own_footer)
    lines.extend(f.format(title=article.title, other1=others[0], other2=others[1]) for f in site.footer)
    return "\n\n".join(lines) + "\n"


def syndicated_corpus(
    root: Path, limit: int | None = None, seed: int = 7, benchmark: Path = SAMPLE_BENCHMARK
) -> dict[str, dict[str, str]]:
    """Write the corpus under ``root``; return ``{source: {"cluster", "body"}}`` with the expected body.

    ``body`` is what a perfect cleaner returns as ``text`` (None for copies cut short, whose ending the
    scraper lost anyway, and for distinct short pieces, whose body is their whole text).
    """
    rng = random.Random(seed)
    articles = benchmark_articles(limit, benchmark)
    truth: dict[str, dict[str, str]] = {}
    for n, article in enumerate(articles):
        sites = rng.sample(SITES, k=rng.randint(1, 4))
        others = [a.title for a in rng.sample(articles, 2)]
        for copy, site in enumerate(sites):
            variant = (
                "original"
                if copy == 0
                else rng.choice(("exact", "edited", "typographic", "mojibake", "truncated"))
            )
            body, expected = article.body, article.body
            if variant == "edited":
                body = expected = _edit(article.body, rng)
            elif variant == "typographic":
                body = _typographic_variant(article.body)
                expected = None  # same words, different typography: checked through dedup, not byte-exact
            elif variant == "truncated":
                body = expected = _truncate(article.body)
            text = scraped_text(article, body, site, rng, others, truncated=variant == "truncated")
            if variant == "mojibake":
                text = _mojibake(text)
            source = f"{site.folder}/{n:04d}-{variant}.txt"
            path = root / source
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            truth[source] = {"cluster": article.key, "body": expected, "title": article.title}
    for n, text in enumerate(distinct_short_articles(rng, 40)):
        site = SITES[n % len(SITES)]
        source = f"{site.folder}/brief-{n:03d}.txt"
        (root / source).parent.mkdir(parents=True, exist_ok=True)
        (root / source).write_text(text, encoding="utf-8")
        truth[source] = {"cluster": source, "body": None, "title": None}
    return truth


TOWNS = (
    "Harbor Point",
    "Gull Bay",
    "Elm Grove",
    "Cedar Falls",
    "Stone Ridge",
    "Maple Hollow",
    "Fox Run",
    "Iron Bridge",
    "Willow Creek",
    "Pine Bluff",
)


def distinct_short_articles(rng: random.Random, count: int) -> list[str]:
    """Short local-news briefs from one template with different facts: distinct articles, alike in form."""
    things = [
        "a new library wing",
        "repairs to the Main Street bridge",
        "a summer youth jobs program",
        "an expanded bus route",
        "a ban on leaf blowers",
        "a solar farm on the old landfill",
        "a dog park near the river",
        "raises for school bus drivers",
    ]
    briefs = set()
    # Each brief is about its own (town, measure): two briefs that differ only in a figure would be a
    # correction of one story, which a reader calls the same article.
    pairs = rng.sample([(t, m) for t in TOWNS for m in things], count)
    for town, thing in pairs:
        yes, no = rng.randint(4, 9), rng.randint(0, 3)
        cost = rng.randint(2, 90) * 10_000
        briefs.add(
            f"{town} council votes on {thing}\n\n"
            f"The {town} town council voted {yes} to {no} on Tuesday night to approve {thing}. "
            f"The plan is expected to cost about ${cost:,} and will be paid for "
            "from the town's reserve fund. "
            f"Council members said residents had asked for {thing} for several years, and a public hearing "
            f"on the details is scheduled for next month at the {town} community center.\n"
        )
    return sorted(briefs)


def police_briefs(rng: random.Random, count: int) -> list[str]:
    """Short police briefs from one template that differ only in their names and figures (the town, how
    many were arrested, the day, the street), any two in at least two of them: distinct stories that share
    most of their words (Jaccard up to about 0.75), which only their names and figures tell apart."""
    days = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    streets = ("Main Street", "Harbor Road", "Mill Lane", "Church Street", "Oak Avenue")
    chosen: list[tuple[str, int, str, str]] = []
    options = [(t, n, d, s) for t in TOWNS for n in range(2, 10) for d in days for s in streets]
    rng.shuffle(options)
    for option in options:
        if all(sum(a != b for a, b in zip(option, other, strict=True)) >= 2 for other in chosen):
            chosen.append(option)
        if len(chosen) == count:
            break
    return [
        f"{town} police arrest {number} after break-ins\n\n"
        f"Police in {town} arrested {number} people on {day} after a series of break-ins at shops on "
        f"{street}. Officers said the arrests followed reports from residents over the past two weeks, "
        "and that stolen goods had been found in a garage nearby. The suspects are expected to appear in "
        f"court later this month. Police asked anyone with information to call the {town} police station.\n"
        for town, number, day, street in chosen
    ]


_WORD = re.compile(r"\S+")


def vocabulary(texts: list[str]) -> list[str]:
    """The distinct words (runs of non-space, punctuation attached, as written) of ``texts``, sorted."""
    return sorted({word for text in texts for word in text.split()})


def light_rewrite(text: str, rng: random.Random, words: list[str], every: int = 40) -> str:
    """``text`` with one word in ``every`` replaced by another word drawn from ``words``: the words are cut
    into ``round(n / every)`` (at least one) runs of equal length and one random word of each run is
    replaced, so the changes are spread as a light rewrite spreads them. Spacing and paragraphs stay."""
    spans = [match.span() for match in _WORD.finditer(text)]
    count = max(1, round(len(spans) / every))
    picked = [rng.randrange(k * len(spans) // count, (k + 1) * len(spans) // count) for k in range(count)]
    parts, last = [], 0
    for i in picked:
        start, end = spans[i]
        replacement = text[start:end]
        while replacement == text[start:end]:
            replacement = rng.choice(words)
        parts += [text[last:start], replacement]
        last = end
    return "".join(parts) + text[last:]


def rewrite_corpus(
    root: Path, limit: int | None = None, seed: int = 11, benchmark: Path = SAMPLE_BENCHMARK
) -> dict[str, str]:
    """Write each benchmark article, each of 40 templated briefs (``distinct_short_articles``) and each of
    40 police briefs (``police_briefs``) with a light rewrite of it (``light_rewrite``, over the vocabulary
    of all of them) under ``root``; return each file's true cluster (``{source: cluster}``): an original
    and its rewrite share one, briefs are apart.

    Files: ``KIND/NNNN.txt`` and ``KIND-rewrite/NNNN.txt`` for KIND ``article``, ``brief`` and ``police``
    (each file the body alone, as a scraper saves a page's text).
    """
    rng = random.Random(seed)
    bodies = [article.body for article in benchmark_articles(limit, benchmark)]
    briefs, police = distinct_short_articles(rng, 40), police_briefs(rng, 40)
    words = vocabulary(bodies + briefs + police)
    truth: dict[str, str] = {}
    for kind, texts in (("article", bodies), ("brief", briefs), ("police", police)):
        for n, text in enumerate(texts):
            for folder, body in ((kind, text), (f"{kind}-rewrite", light_rewrite(text, rng, words))):
                source = f"{folder}/{n:04d}.txt"
                (root / folder).mkdir(parents=True, exist_ok=True)
                (root / source).write_text(body + "\n", encoding="utf-8")
                truth[source] = f"{kind}/{n:04d}"
    return truth


# What an OUTPUT folder holds after a run with reports: no spool or temporary file left behind.
OUTPUT_NAMES = sorted(
    [contract.RECORDS, contract.DUPLICATES, contract.REJECTED, contract.STATS, INDEX_FILE, DATA_DIR]
    + ["report.json", "report.html", LOCK_FILE]
)


def mixed_corpus(raw: Path, articles: int, pages: int) -> Path:
    """``syndicated_corpus(raw, limit=articles)`` (copies of every kind, learned boilerplate, distinct
    briefs), ``pages`` real pages of the benchmark sample under ``pages/``, and bad inputs of several
    reasons under ``bad/``: what a run that must equal another is compared on."""
    syndicated_corpus(raw, limit=articles)
    (raw / "pages").mkdir()
    for page in sorted((SAMPLE_BENCHMARK / "html").iterdir())[:pages]:
        data = gzip.decompress(page.read_bytes()) if page.suffix == ".gz" else page.read_bytes()
        (raw / "pages" / page.name.removesuffix(".gz")).write_bytes(data)
    (raw / "bad").mkdir()
    (raw / "bad" / "empty.txt").write_bytes(b"")
    (raw / "bad" / "binary.txt").write_bytes(b"\x00\x01\x02 not text \xff" * 10)
    (raw / "bad" / "lines.jsonl").write_text('{"text": "A record with too few words."}\n{not json\n')
    (raw / "bad" / "menu.html").write_text("<html><body><nav>Home | About</nav></body></html>")
    return raw
