"""Tests for pipeline/cleanup.py: titles, bylines, shipped and learned boilerplate, and what must stay."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import cleanup
from pipeline.cleanup import (
    _FOLD_TITLE,
    BoilerplateRules,
    CleanupConfig,
    LineCounts,
    _fold,
    clean_document,
    parse_byline,
    parse_date,
    same_title,
    title_variants,
)
from pipeline.contract import Document, Rejection
from pipeline.normalize import normalize_text
from tests.corpus import SAMPLE_BENCHMARK, SEED

DATA = Path(__file__).parent / "data" / "cleanup"
RULES = BoilerplateRules.load()
CONFIG = CleanupConfig()

BODY = (
    "The council approved the budget on Tuesday after a long debate about road repairs and schools.\n\n"
    "Opponents said the plan spent too much on consultants and too little on the bridges downtown.\n\n"
    "A final vote on the details is expected next month, the mayor said in a statement."
)


def clean(text: str, title: str | None = None, learned: frozenset[int] = frozenset()) -> Document | Rejection:
    return clean_document(Document("doc.txt", normalize_text(text), title=title), RULES, learned, CONFIG)


def test_seed_article_keeps_every_paragraph_and_drops_title_and_exit_line():
    raw = SEED.read_text(encoding="utf-8")
    doc = clean(raw)
    assert isinstance(doc, Document)
    title = "Ukraine strikes Russia with US-made ATACMS for the first time"
    assert doc.title == title
    assert title not in doc.body
    assert "Exit mobile version" not in doc.body
    body_paragraphs = [
        p for p in normalize_text(raw).split("\n\n") if p not in (title, "Exit mobile version")
    ]
    assert doc.body.split("\n\n") == body_paragraphs
    assert "What are ATACMS missiles?" in doc.body.split("\n\n")


@pytest.mark.parametrize("case", sorted(DATA.glob("*.in.txt")), ids=lambda p: p.name.removesuffix(".in.txt"))
def test_cleanup_cases(case: Path):
    """Data-driven: each ``NAME.in.txt`` cleans to ``NAME.out.txt`` exactly."""
    expected = case.with_name(case.name.replace(".in.txt", ".out.txt")).read_text(encoding="utf-8").strip()
    doc = clean(case.read_text(encoding="utf-8"))
    assert isinstance(doc, Document)
    assert doc.body == expected


def test_single_title_line_keeps_its_site_suffix():
    doc = clean("Skip to content\n\nTitle of the story | The Site\n\n" + BODY)
    assert (doc.title, doc.body) == ("Title of the story | The Site", BODY)


@pytest.mark.parametrize(
    "header",
    [
        "Title of the story – The Site\n\nTitle of the story",
        "The Site\n\nHome News Sport\n\nTitle of the story\n\nTitle of the story | The Site",
        "Title of the story\n\nBy Jane Doe | November 19, 2024",
        "Title of the story\n\nPosted on November 19, 2024 by Jane Doe",
    ],
)
def test_head_chrome_title_and_byline_leave_the_text(header: str):
    doc = clean(header + "\n\n" + BODY)
    assert isinstance(doc, Document)
    assert doc.body == BODY
    assert doc.title == "Title of the story"


def test_byline_fills_author_and_date():
    doc = clean("Title of the story\n\nBy Jane Doe | November 19, 2024\n\n" + BODY)
    assert (doc.author, doc.date) == ("Jane Doe", "2024-11-19")


@pytest.mark.parametrize(
    "footer",
    [
        "Exit mobile version",
        "Share this:\nTwitter\nFacebook\nLike this:\nLike Loading...",
        "The post Title of the story appeared first on The Site.",
        "Leave a Reply\nYour email address will not be published. Required fields are marked *",
        "Sign up for our daily newsletter to get the latest stories in your inbox.",
        "Subscribe to our newsletter\n© 2024 The Site. All rights reserved.",
        "We use cookies to improve your experience. By continuing you accept our cookie policy.",
        "Related\nAnother story with a long enough title\nYet another headline here",
        "Continue reading →",
    ],
)
def test_tail_boilerplate_is_removed(footer: str):
    doc = clean("Title of the story\n\n" + BODY + "\n\n" + footer)
    assert isinstance(doc, Document)
    assert doc.body == BODY


@pytest.mark.parametrize(
    "credits",
    [
        ["© Reuters"],
        ["Originally published on Live Science."],
        ["This article was originally published by Futurism. Read the original article."],
        ["Copyright 2019 Hawaii News Now. All rights reserved."],
        ["Follow NBC Latino on Facebook, Twitter and Instagram."],
        ["Reporting by Jane Doe; Editing by John Roe", "© 2024 Thomson Reuters"],
        ["Dieser Artikel erschien zuerst auf Spektrum.de."],
        ["aja/PAP"],
    ],
)
def test_credits_that_close_the_article_stay_in_the_text_and_are_listed(credits: list[str]):
    doc = clean("Title of the story\n\n" + BODY + "\n\n" + "\n\n".join(credits) + "\n\nExit mobile version")
    assert isinstance(doc, Document)
    assert doc.body == BODY + "\n\n" + "\n\n".join(credits)
    assert doc.credits == credits
    assert doc.removed == ["Title of the story", "Exit mobile version"]


def test_a_credit_followed_by_a_sentence_a_copy_added_still_closes_the_article():
    added = "This story has been updated with the council's response."
    doc = clean("Title of the story\n\n" + BODY + "\n\n© Reuters\n\n" + added)
    assert isinstance(doc, Document)
    assert (doc.body, doc.credits) == (BODY + "\n\n© Reuters\n\n" + added, ["© Reuters"])


@pytest.mark.parametrize(
    "chrome",
    [
        # the site's footer, after chrome
        "Subscribe to our newsletter\n\n© 2024 The Site. All rights reserved.",
        "Share this:\nFacebook\n© Reuters",
        "Follow us on Twitter",  # the site's own follow prompt is no credit
    ],
)
def test_credit_lines_after_site_chrome_are_the_sites_and_go(chrome: str):
    doc = clean("Title of the story\n\n" + BODY + "\n\n" + chrome)
    assert isinstance(doc, Document)
    assert (doc.body, doc.credits) == (BODY, [])


def test_image_credits_between_paragraphs_are_removed():
    first, second, third = BODY.split("\n\n")
    for credit in (
        "© Oli Scarff/Getty Images",
        "Foto: dpa",
        "Crédits photos : Bestimage",
        "(Credit: Jane Doe)",
    ):
        # a credit by an image, not among the body's last CLOSING_LINES lines (there it closes the article)
        doc = clean("\n\n".join(["Title of the story", first, credit, second, third, BODY]))
        assert isinstance(doc, Document)
        assert doc.body == "\n\n".join([first, second, third, BODY]), credit


def test_inline_advertisement_and_related_lines_are_removed_between_paragraphs():
    first, second, third = BODY.split("\n\n")
    text = f"Title\n\n{first}\n\nAdvertisement\n\n{second}\n\nRelated: Budget fight heads to court\n\n{third}"
    assert clean(text).body == BODY


@pytest.mark.parametrize(
    "paragraph",
    [
        "Share this story with your friends, the mayor urged residents who had missed the meeting.",
        "Related coverage of the vote appeared in several papers, which said the council acted fast.",
        "Advertisement revenue fell by a third last year, the company said, as readers moved elsewhere.",
        "Copyright law was not part of the debate, although members asked about the archive.",
        "Comments from residents were mostly positive.",
    ],
)
def test_body_paragraphs_that_resemble_boilerplate_stay(paragraph: str):
    text = f"Title\n\n{BODY}\n\n{paragraph}"
    assert clean(text).body == f"{BODY}\n\n{paragraph}"
    text = f"Title\n\n{paragraph}\n\n{BODY}"
    assert clean(text).body == f"{paragraph}\n\n{BODY}"


def test_document_of_only_boilerplate_is_rejected():
    result = clean("Skip to content\n\nShare this:\n\nExit mobile version")
    assert isinstance(result, Rejection)
    assert result.reason == "no_main_text"


def test_hard_wrapped_text_is_not_split_into_title_and_paragraphs():
    wrapped = (
        "Inheritance is a basic concept of Object-Oriented Programming where\n"
        "the basic idea is to create new classes that add extra detail to\n"
        "existing classes. This is done by allowing the new classes to reuse\n"
        "the methods and variables of the existing classes and new methods\n"
    )
    doc = clean(wrapped)
    assert doc.title is None
    assert doc.body == normalize_text(wrapped)


def test_removed_lines_are_recorded():
    doc = clean("Title\n\nTitle\n\n" + BODY + "\n\nExit mobile version")
    assert doc.removed == ["Title", "Title", "Exit mobile version"]


@pytest.mark.parametrize(
    ("line", "title", "same"),
    [
        ("Ukraine strikes", "Ukraine strikes", True),
        ("Ukraine strikes | Kyiv Post", "Ukraine strikes", True),
        ("Ukraine strikes", "Kyiv Post: Ukraine strikes", True),
        ("UKRAINE STRIKES!", "Ukraine strikes", True),
        ("Ukraine - Russia war", "Ukraine - Peace talks", False),
        ("Ukraine", "Ukraine strikes Russia", False),
    ],
)
def test_same_title(line: str, title: str, same: bool):
    assert same_title(line, title) is same


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("By Jane Doe | November 19, 2024", ("Jane Doe", "2024-11-19")),
        ("By Jane Doe, Nov. 19, 2024", ("Jane Doe", "2024-11-19")),
        ("Posted on November 19, 2024 by John Smith", ("John Smith", "2024-11-19")),
        ("Published: 2024-11-19 10:32 GMT", (None, "2024-11-19")),
        ("November 19, 2024", (None, "2024-11-19")),
        ("By Maria Garcia and Wei Chen", ("Maria Garcia and Wei Chen", None)),
        ("By Kyiv Wire staff | November 19, 2024", ("Kyiv Wire staff", "2024-11-19")),
        ("By the way, 2024 | November 19, 2024", (None, "2024-11-19")),
        ("By our staff", None),
        ("By the end of the year, prices rose.", None),
        ("by far the largest protest in years", None),
        ("Reuters", None),
        ("In 2024 the city grew.", None),
    ],
)
def test_parse_byline(line: str, expected):
    assert parse_byline(line) == expected


def test_parse_date_needs_a_year():
    assert parse_date("Tuesday") is None
    assert parse_date("2019-11-19T08:00:00Z") == "2019-11-19"


def _site_docs(footer: str, count: int, group: str = "site.example") -> list[Document]:
    return [
        Document(
            f"{group}/{i}.txt",
            normalize_text(
                f"Story number {i} about topic {i}\n\n"
                f"Paragraph {i} says something distinct about item {i} "
                f"and nothing else.\n\n{footer}"
            ),
            group=group,
        )
        for i in range(count)
    ]


def test_line_recurring_across_a_source_is_learned_and_stripped():
    footer = "Tips? Write to the newsroom at tips@site.example"
    docs = _site_docs(footer, 5)
    counts = LineCounts()
    for doc in docs:
        counts.add(doc, CONFIG)
    learned = counts.learned(CONFIG)["site.example"]
    cleaned = clean_document(docs[0], RULES, learned, CONFIG)
    assert footer not in cleaned.body
    assert "Paragraph 0 says something distinct" in cleaned.body


def test_line_recurring_mid_body_across_a_source_is_learned_and_stripped_there_too():
    promo = "CLICK HERE TO GET THE SITE APP"
    docs = [
        Document(
            f"site.example/{i}.txt",
            normalize_text(
                f"Story {i}\n\n"
                + "\n\n".join(
                    f"Paragraph {j} of story {i} says something of its own, item {j}." for j in range(9)
                )
                + f"\n\n{promo}\n\n"
                + "\n\n".join(f"Later paragraph {j} of story {i} goes on with its account." for j in range(9))
            ),
            group="site.example",
        )
        for i in range(5)
    ]
    counts = LineCounts()
    for doc in docs:
        counts.add(doc, CONFIG)
    cleaned = clean_document(docs[0], RULES, counts.learned(CONFIG)["site.example"], CONFIG)
    assert promo not in cleaned.body and promo in cleaned.removed
    assert "Paragraph 8 of story 0" in cleaned.body and "Later paragraph 0 of story 0" in cleaned.body


def test_copies_of_one_article_do_not_teach_that_its_body_is_boilerplate():
    body = "A short closing line of the article."
    docs = [
        Document(
            f"site.example/{i}.txt",
            normalize_text(
                f"Same story\n\nThe same long paragraph of the same syndicated story, copied.\n\n{body}"
            ),
            group="site.example",
        )
        for i in range(6)
    ]
    counts = LineCounts()
    for doc in docs:
        counts.add(doc, CONFIG)
    assert "site.example" not in counts.learned(CONFIG)


def test_learning_needs_a_share_of_the_source():
    docs = _site_docs("Rare footer line seen thrice", 3) + _site_docs("", 20, group="site.example")[3:]
    counts = LineCounts()
    for doc in docs:
        counts.add(doc, CONFIG)
    assert not counts.learned(CONFIG).get("site.example")


def test_rule_file_override_and_errors(tmp_path: Path):
    custom = tmp_path / "rules.txt"
    custom.write_text("[edge]\nbrought to you by .+\n", encoding="utf-8")
    rules = BoilerplateRules.load(custom)
    doc = clean_document(
        Document("d", normalize_text(f"T\n\n{BODY}\n\nBrought to you by Acme")), rules, frozenset(), CONFIG
    )
    assert doc.body == BODY
    custom.write_text("[edge]\n(unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="rules.txt:2"):
        BoilerplateRules.load(custom)
    custom.write_text("no section\n", encoding="utf-8")
    with pytest.raises(ValueError, match="before any"):
        BoilerplateRules.load(custom)


def test_config_validation():
    with pytest.raises(ValueError):
        CleanupConfig(learn_min_share=0)
    with pytest.raises(ValueError):
        CleanupConfig(learn_min_docs=1)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_ascii_fold_fast_path_equals_the_regex(text: str) -> None:
    assert _fold.__wrapped__(text) == _FOLD_TITLE.sub(" ", text.casefold()).strip()


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=60))
def test_fold_equals_the_regex_on_any_text(text: str) -> None:
    assert _fold.__wrapped__(text) == _FOLD_TITLE.sub(" ", text.casefold()).strip()


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="ab |:-–İ.", max_size=30),
    st.text(alphabet="ab |:-–İ.", max_size=30),
)
def test_same_title_shortcut_keeps_the_full_comparison(line: str, title: str) -> None:
    folded_line, folded_title = _fold(line), _fold(title)
    full = bool(folded_line) and (
        folded_line in title_variants(title) or folded_title in title_variants(line)
    )
    assert same_title(line, title) == full


def _dateutil_date(text: str) -> str | None:
    """parse_date's plain path (dateutil, strict then fuzzy), which _quick_date must agree with."""
    from datetime import datetime

    from dateutil import parser as date_parser

    try:
        parsed = date_parser.parse(text, fuzzy=False, ignoretz=True, default=datetime(1900, 1, 1))
    except (ValueError, OverflowError):
        return None
    return parsed.date().isoformat()


_MONTH_NAMES = [
    "January",
    "Feb",
    "mar",
    "April",
    "May",
    "June",
    "Jul",
    "AUGUST",
    "Sep",
    "Sept",
    "October",
    "Nov",
    "Dec",
]


@settings(max_examples=600, deadline=None)
@given(
    st.integers(1990, 2030),
    st.integers(0, 13),
    st.integers(0, 32),
    st.sampled_from(["iso", "iso-time", "month-first", "month-dot", "day-first"]),
    st.one_of(
        st.none(), st.tuples(st.integers(0, 25), st.integers(0, 61), st.sampled_from(["", " am", "PM"]))
    ),
)
def test_quick_dates_are_dateutils(year: int, month: int, day: int, form: str, clock) -> None:
    name = _MONTH_NAMES[month % len(_MONTH_NAMES)]
    time = f", {clock[0]}:{clock[1]:02d}{clock[2]}" if clock else ""
    hour, minute = clock[:2] if clock else (10, 30)
    text = {
        "iso": f"{year}-{month:02d}-{day:02d}",
        "iso-time": f"{year}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00Z",
        "month-first": f"{name} {day}, {year}{time}",
        "month-dot": f"{name}. {day}, {year}{time}",
        "day-first": f"{day} {name} {year}{time.lstrip(',')}",
    }[form]
    quick = cleanup._quick_date(text)
    if quick is not None:
        assert quick.isoformat() == _dateutil_date(text), text


@pytest.mark.parametrize(
    "text",
    [
        "2024-11-19",
        "2019-11-19T08:00:00Z",
        "November 19, 2024",
        "Nov. 19, 2024, 10:32 AM",
        "19 Nov 2024 22:05",
    ],
)
def test_common_byline_dates_skip_dateutil(text: str) -> None:
    assert cleanup._quick_date(text) is not None
    assert parse_date(text) == _dateutil_date(text)


def _same_title_plain(line: str, title: str) -> bool:
    """same_title without its shortcut: variants computed for every pair."""
    folded_line, folded_title = _fold(line), _fold(title)
    if not folded_line:
        return False
    if folded_line in title_variants(title):
        return True
    return (folded_line.startswith(folded_title) or folded_line.endswith(folded_title)) and folded_title in (
        title_variants(line)
    )


_TITLE_PIECES = st.sampled_from(
    ["Ukraine", "strikes", "Kyiv Post", "Straße", "ÉTÉ", "war", "a", "--", "2024"]
)
_TITLE_SEPARATORS = st.sampled_from([" ", " | ", " - ", ": ", "·", " » ", " – ", "|", "!", ", "])


@settings(max_examples=1000, deadline=None)
@given(
    st.lists(st.tuples(_TITLE_PIECES, _TITLE_SEPARATORS), max_size=5),
    st.lists(st.tuples(_TITLE_PIECES, _TITLE_SEPARATORS), max_size=5),
)
def test_same_title_shortcut_equals_the_plain_comparison(line_parts, title_parts) -> None:
    line = "".join(p + s for p, s in line_parts).strip()
    title = "".join(p + s for p, s in title_parts).strip()
    assert same_title(line, title) is _same_title_plain(line, title)


def _strip_tail_plain(lines, content, drop, is_edge_boilerplate, rules, config) -> None:
    """_strip_tail without its shortcut: the tail rescanned for a heading after every line taken off."""
    remaining = [i for i in content if i not in drop]
    while remaining:
        cut = None
        for pos in range(len(remaining) - 1, max(len(remaining) - 41, 0), -1):
            line = lines[remaining[pos]]
            if cleanup._words(line) > 20:
                break
            if rules.tail_cut.fullmatch(line):
                cut = pos
        if cut:
            drop.update(remaining[cut:])
            del remaining[cut:]
            continue
        if not is_edge_boilerplate(lines[remaining[-1]]):
            return
        drop.add(remaining.pop())


# Tail lines of every kind the loop tells apart: tail-cut headings, edge boilerplate (short, and one of
# 21-30 words that a rule matches), short lines no rule knows, long body lines.
_TAIL_LINES = st.sampled_from(
    [
        "Related",
        "Share this:",
        "Twitter",
        "Exit mobile version",
        "A short heading",
        "© 2024 " + " ".join(["word"] * 22),
        " ".join(["body"] * 25),
        " ".join(["body"] * 40),
    ]
)


@settings(max_examples=1000, deadline=None)
@given(st.lists(_TAIL_LINES, min_size=1, max_size=60))
def test_strip_tail_shortcut_equals_the_plain_loop(tail: list[str]) -> None:
    lines = tail
    content = list(range(len(lines)))

    def is_edge(line: str) -> bool:
        return cleanup._short(line, CONFIG) and RULES.matches("edge", line)

    fast: set[int] = set()
    plain: set[int] = set()
    cleanup._strip_tail(lines, content, fast, is_edge, RULES, CONFIG)
    _strip_tail_plain(lines, content, plain, is_edge, RULES, CONFIG)
    assert fast == plain


def _learned_plain(docs: list[Document], config: CleanupConfig) -> dict[str, frozenset[int]]:
    """Learning as plainly as it can be said: per group and short line, the documents carrying it and
    their distinct fingerprints."""
    from collections import defaultdict

    from pipeline.cleanup import line_key

    per_group = Counter(doc.group for doc in docs if doc.body.strip("\n"))
    carriers: dict[tuple[str, int], list[int]] = defaultdict(list)
    for doc in docs:
        lines = [ln for ln in doc.body.split("\n") if ln]
        if not lines:
            continue
        for key in {line_key(ln) for ln in lines if cleanup._words(ln) <= config.max_boilerplate_words}:
            carriers[(doc.group, key)].append(line_key(max(lines, key=len)))
    learned: dict[str, set[int]] = defaultdict(set)
    for (group, key), fingerprints in carriers.items():
        floor = max(config.learn_min_docs, config.learn_min_share * per_group[group])
        if len(fingerprints) >= floor and len(set(fingerprints)) >= config.learn_min_docs:
            learned[group].add(key)
    return {group: frozenset(keys) for group, keys in learned.items()}


_LEARN_LINES = st.sampled_from(
    ["Footer line", "Share this", "Tagline of the site", "Body A " * 5, "Body B " * 5, "Body C " * 5, "x"]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a.example", "b.example", "c.example"]), st.lists(_LEARN_LINES, max_size=20)
        ),
        max_size=40,
    ),
    st.integers(1, 5),
)
def test_learning_from_merged_chunks_equals_the_plain_count(docs_lines, chunks: int) -> None:
    docs = [
        Document(f"{i}.txt", "\n\n".join(lines), group=group) for i, (group, lines) in enumerate(docs_lines)
    ]
    parts = [LineCounts() for _ in range(chunks)]
    for i, doc in enumerate(docs):
        parts[i * chunks // max(len(docs), 1)].add(doc, CONFIG)
    total = LineCounts()
    for part in reversed(parts):  # any order: the groups are numbered differently in each part
        total.merge(part)
    assert total.learned(CONFIG) == _learned_plain(docs, CONFIG)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\n")), max_size=12
    )
)
def test_line_keys_are_each_lines_key(lines: list[str]) -> None:
    from pipeline.cleanup import line_key, line_keys

    assert line_keys(lines) == [line_key(line) for line in lines]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="ab \n", max_size=60), st.sets(st.integers(0, 30)))
def test_join_paragraphs_shortcut_equals_the_plain_join(text: str, drop: set[int]) -> None:
    lines = cleanup.paragraph_lines(normalize_text(text))
    content = [i for i, line in enumerate(lines) if line]
    assert cleanup._join_paragraphs(lines, drop, content) == cleanup._join_blocks(lines, drop)


# ---------------------------------------------------------------------------------------------------
# too short to be an article

BRIEF = (
    "Firefighters were called to a warehouse on Harbour Road shortly after midnight. Nobody was hurt, "
    "the fire service said, but the road will stay closed until noon while investigators work out how "
    "the fire started and whether the building is safe."
)


@pytest.mark.parametrize(
    "text",
    [
        "Home About",
        "Short.",
        "Home | About | Contact",
        "404 Not Found",
        "Page not found.",
        "Menu\n\nSearch\n\nLog in",
    ],
)
def test_menus_and_lone_words_are_too_short(text: str) -> None:
    result = cleanup.require_min_words(Document("a.txt", text), CONFIG)
    assert isinstance(result, Rejection)
    assert (result.reason, result.stage) == ("too_short", "cleanup")
    assert result.detail.endswith("and no sentence: not an article (--min-words 10)")


@pytest.mark.parametrize(
    "text",
    [
        BRIEF,  # a 40-word news brief
        "Police closed the road after the crash.",  # one sentence of 7 words
        "„Das war knapp“, sagte der Bürgermeister.",
        "东京今天发生了六级地震。",  # Chinese has no spaces: each character counts as a word
        "one two three four five six seven eight nine ten",
    ],
)
def test_a_brief_or_a_sentence_is_kept(text: str) -> None:
    doc = Document("a.txt", text)
    assert cleanup.require_min_words(doc, CONFIG) is doc


def test_min_words_zero_keeps_every_text_and_is_validated() -> None:
    doc = Document("a.txt", "Short.")
    assert cleanup.require_min_words(doc, CleanupConfig(min_words=0)) is doc
    assert isinstance(cleanup.require_min_words(doc, CleanupConfig(min_words=2)), Rejection)
    with pytest.raises(ValueError, match="min_words"):
        CleanupConfig(min_words=-1)
    assert CleanupConfig(min_words=5).fingerprint(RULES).endswith("-minwords5")


def test_no_real_article_here_is_too_short() -> None:
    """The article bodies of the benchmark sample (80), the cleanup pages in nine languages, the seed."""
    import json

    truth = json.loads(
        (DATA.parent / "article-extraction-benchmark" / "ground-truth.json").read_text("utf-8")
    )
    texts = [page["articleBody"] for page in truth.values()] + [SEED.read_text(encoding="utf-8")]
    texts += [path.read_text(encoding="utf-8") for path in sorted(DATA.glob("*.out.txt"))]
    rejected = [
        t[:60] for t in texts if isinstance(cleanup.require_min_words(Document("a", t), CONFIG), Rejection)
    ]
    assert rejected == []
    assert len(texts) == 80 + 1 + 10


def test_no_line_of_the_reference_bodies_is_removed_between_paragraphs():
    """The article-extraction-benchmark's annotated bodies (the sample in tests/data): no line of theirs is an
    [anywhere] rule or a learned-anywhere candidate unless it is a credit that closes the article."""
    truth = json.loads((SAMPLE_BENCHMARK / "ground-truth.json").read_text(encoding="utf-8"))
    hits = []
    for key, item in truth.items():
        lines = [ln for ln in normalize_text(item["articleBody"]).split("\n") if ln]
        for line in lines:
            if cleanup._short(line, CONFIG) and RULES.matches("anywhere", line):
                if not (line == lines[-1] or RULES.matches("credit", line)):
                    hits.append((key, line))
    assert hits == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Home Issues Politics World Business Share Facebook Twitter WhatsApp Email Print", True),
        ("Startseite Politik Wirtschaft Sport Kultur Teilen Facebook Twitter Drucken", True),
        ("Share Facebook Twitter WhatsApp", False),  # short: the [edge] rules' business
        ("Users can share posts on Facebook, Twitter and WhatsApp or send them by email to friends.", False),
        ("The Facebook Twitter And WhatsApp Outage That Took Down Messaging For Millions", False),
    ],
)
def test_widget_rows_are_known_by_their_shape(line: str, expected: bool):
    assert cleanup.widget_row(line) is expected
    doc = clean("\n\n".join(["Title of the story", BODY.split("\n\n")[0], line, BODY.split("\n\n")[1]]))
    assert isinstance(doc, Document)
    assert (line not in doc.body) is expected


@pytest.mark.parametrize(
    ("title", "site_name", "hostname", "expected"),
    [
        ("New York State reportedly investigating WeWork – TechCrunch", None, "social.techcrunch.com", None),
        ("Meal Prep for A Little More Obsessed | The Beachbody Blog", "The Beachbody Blog", "x.com", None),
        ("September 2018 open thread - The GiveWell Blog", None, "blog.givewell.org", None),
        ("Olympische Spiele in Paris - Lebensmittelpraxis.de", None, "lebensmittelpraxis.de", None),
        (
            "Star Wars Jedi review - shoots for the moon - VG247",
            None,
            "vg247.com",
            "Star Wars Jedi review - shoots for the moon",
        ),
        (
            "Apple: The iPhone maker reports its sales",
            None,
            "apple.com",
            "Apple: The iPhone maker reports its sales",
        ),
        ("Bubonic plague: Third case in China", None, "express.co.uk", "Bubonic plague: Third case in China"),
    ],
)
def test_title_affixes_naming_the_site_are_removed(title, site_name, hostname, expected):
    wanted = expected or re.split(r" [-–|] ", title)[0]
    assert cleanup.strip_title_affixes(title, site_name, hostname) == wanted


def test_title_affix_shared_by_a_sources_titles_is_learned():
    docs = [
        Document(
            f"s/{i}.txt",
            normalize_text(f"Paragraph {i} says something distinct about item {i} and more."),
            title=f"Opinion | Headline number {i} of the day",
            group="site.example",
            hostname="site.example",
        )
        for i in range(5)
    ]
    counts = LineCounts()
    for doc in docs:
        counts.add(doc, CONFIG)
    cleaned = clean_document(docs[0], RULES, counts.learned(CONFIG)["site.example"], CONFIG)
    assert cleaned.title == "Headline number 0 of the day"
    alone = clean_document(
        Document("t.txt", docs[1].body, title="Opinion | Headline", group="other.example"),
        RULES,
        frozenset(),
        CONFIG,
    )
    assert alone.title == "Opinion | Headline"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Por: Redacción / Crítica -", ("Redacción / Crítica", None)),
        ("von zahlenzauberin", ("zahlenzauberin", None)),
        ("Staff Reports", None),  # names nobody: the AEB annotators keep it as the body's first line
        ("Von Anna Müller", ("Anna Müller", None)),
        ("Par Jean Dupont, le 3 mars 2021", ("Jean Dupont", "2021-03-03")),
        ("Por Juan Pérez | 12 de enero de 2022", ("Juan Pérez", "2022-01-12")),
        ("19. November 2024", (None, "2024-11-19")),
        ("19 listopada 2024", (None, "2024-11-19")),
        ("Von der Leyen kündigte an, dass die Kommission handeln wird", None),
    ],
)
def test_bylines_in_the_other_languages(line: str, expected):
    assert parse_byline(line) == expected
