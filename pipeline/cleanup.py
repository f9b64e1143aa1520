"""Boilerplate cleanup: repeated titles, bylines, known boilerplate lines and lines learned from the corpus.

Every rule removes whole lines, and only where boilerplate stands: in the run of boilerplate at the head
or the tail of a document, or (for the few ``[anywhere]`` rules, such as "Advertisement") as a line of its
own between paragraphs. A line longer than ``CleanupConfig.max_boilerplate_words`` is never removed, so a
body paragraph that merely mentions cookies or newsletters stays. Each removed line is recorded on the
document (``Document.removed``) so reports can show what was cut.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from importlib import resources
from itertools import islice
from pathlib import Path

import numpy as np
import xxhash

from pipeline.contract import Document, Rejection
from pipeline.normalize import ASCII_SEPARATORS, NON_ASCII_NON_WORD

SECTIONS = ("edge", "anywhere", "tail-cut", "credit")


@dataclass(frozen=True, slots=True)
class CleanupConfig:
    """Settings of the cleanup stage.

    Args:
        boilerplate_file: rule file replacing the shipped ``pipeline/boilerplate.txt``.
        learn_min_docs: a line is learned as boilerplate of a source only if at least this many distinct
            articles of that source carry it ...
        learn_min_share: ... and at least this share of the source's documents.
        max_boilerplate_words: longer lines are never boilerplate.
        min_words: a clean text with fewer words than this and no sentence is not an article: it is
            rejected as ``too_short`` (see :func:`require_min_words`; 0 keeps every text). 10 rejects a
            navigation menu left alone ("Home About Contact"), a lone word ("Short.", "Menu") or a
            "404 Not Found", and keeps a one-sentence brief ("Police closed the road after the crash.")
            and any text of 10 words or more. None of the 181 pages of the article-extraction-benchmark,
            the 1,033 of trafilatura's evaluation archive or the texts in tests/data is rejected by it.
    """

    boilerplate_file: Path | None = None
    learn_min_docs: int = 3
    learn_min_share: float = 0.3
    max_boilerplate_words: int = 30
    min_words: int = 10

    def fingerprint(self, rules: BoilerplateRules) -> str:
        """Names what the clean text of a record depends on besides normalisation: the rules, the
        learning settings (the file's path does not matter, its rules do) and the shortest text kept."""
        return (
            f"rules-{rules.digest}-learn{self.learn_min_docs}/{self.learn_min_share}/all-lines"
            f"/{self.max_boilerplate_words}-minwords{self.min_words}"
        )

    def __post_init__(self) -> None:
        if self.learn_min_docs < 2:
            raise ValueError("learn_min_docs must be at least 2")
        if not 0.0 < self.learn_min_share <= 1.0:
            raise ValueError("learn_min_share must be in (0, 1]")
        if self.max_boilerplate_words < 1:
            raise ValueError("max_boilerplate_words must be positive")
        if self.min_words < 0:
            raise ValueError("min_words must be >= 0 (0 keeps every text)")


@dataclass(slots=True)
class BoilerplateRules:
    """Compiled rule sections of a boilerplate file (one alternation per section).

    Whether a line matches is remembered per section (:meth:`matches`): boilerplate recurs verbatim across
    a corpus, and an alternation of a few dozen rules, some starting with ``.{0,100}``, costs a few
    microseconds a line.
    """

    edge: re.Pattern[str]
    anywhere: re.Pattern[str]
    tail_cut: re.Pattern[str]
    credit: re.Pattern[str]
    source: str = ""
    digest: str = ""  # of the rules (comments and blank lines left out): names them in the index
    _seen: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False, compare=False)

    MEMORY = 1 << 17  # lines remembered at most (then forgotten at once)

    def matches(self, section: str, line: str) -> bool:
        """Whether ``line`` is, as a whole, a rule of ``section`` (``edge`` also takes ``anywhere`` rules)."""
        key = (section, line)
        found = self._seen.get(key)
        if found is None:
            if len(self._seen) >= self.MEMORY:
                self._seen.clear()
            if section == "edge":
                found = bool(self.edge.fullmatch(line) or self.anywhere.fullmatch(line))
            else:
                found = bool(getattr(self, section).fullmatch(line))
            self._seen[key] = found
        return found

    @classmethod
    def load(cls, path: Path | None = None) -> BoilerplateRules:
        """Read and compile a rule file (the shipped list when ``path`` is None).

        Raises ``ValueError`` naming the line of a rule that does not compile.
        """
        if path is None:
            text = resources.files("pipeline").joinpath("boilerplate.txt").read_text(encoding="utf-8")
            origin = "pipeline/boilerplate.txt"
        else:
            text = Path(path).read_text(encoding="utf-8")
            origin = str(path)
        rules: dict[str, list[str]] = {name: [] for name in SECTIONS}
        section = None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line[1:-1]
                if section not in rules:
                    raise ValueError(f"{origin}:{number}: unknown section [{section}]")
                continue
            if section is None:
                raise ValueError(f"{origin}:{number}: rule before any [section]")
            try:
                re.compile(line)
            except re.error as err:
                raise ValueError(f"{origin}:{number}: bad pattern: {err}") from err
            rules[section].append(line)

        def compiled(patterns: list[str]) -> re.Pattern[str]:
            return re.compile("|".join(f"(?:{p})" for p in patterns) or r"(?!)", re.I)

        digest = hashlib.sha256(repr(sorted(rules.items())).encode("utf-8")).hexdigest()[:12]
        return cls(
            compiled(rules["edge"]),
            compiled(rules["anywhere"]),
            compiled(rules["tail-cut"]),
            compiled(rules["credit"]),
            origin,
            digest,
        )


def _words(line: str) -> int:
    """Words in a normalised line (single spaces between words, none at the ends): cheaper than split."""
    return line.count(" ") + 1 if line else 0


def line_key(line: str) -> int:
    """Case-insensitive 64-bit key of a line of normalised text (single spaces, none at the ends: see
    ``normalize_text``), stable across processes (unlike ``hash``)."""
    return xxhash.xxh64_intdigest(line.casefold().encode("utf-8"))


def line_keys(lines: list[str]) -> list[int]:
    """:func:`line_key` of each line (one case-fold and one encoding for them all: neither adds nor
    removes a newline)."""
    if not lines:
        return []
    return list(map(xxhash.xxh64_intdigest, "\n".join(lines).casefold().encode("utf-8").split(b"\n")))


# ---------------------------------------------------------------------------------------------------
# Learning boilerplate lines from the corpus


@dataclass(slots=True)
class LineCounts:
    """Which short lines the documents of each source group carry, for learning boilerplate.

    Kept flat, one entry per (document, distinct short line): the group (an index into ``groups``),
    the line's key and the document's fingerprint (the key of its longest line: copies of one article
    share it). Appending three numbers a line costs a fraction of updating counters and sets, merging the
    chunks' counts is concatenation, and :meth:`totals` reduces them to counts per line at once.
    """

    docs: Counter[str] = field(default_factory=Counter)
    groups: list[str] = field(default_factory=list)
    group_of: array = field(default_factory=lambda: array("q"))
    keys: array = field(default_factory=lambda: array("Q"))
    articles: array = field(default_factory=lambda: array("Q"))
    _ids: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.keys)

    def _group_id(self, group: str) -> int:
        found = self._ids.get(group)
        if found is None:
            found = self._ids[group] = len(self.groups)
            self.groups.append(group)
        return found

    def add(self, doc: Document, config: CleanupConfig) -> None:
        """Count the short lines of one normalised document."""
        lines = [ln for ln in doc.body.split("\n") if ln]
        if not lines:
            return
        self.docs[doc.group] += 1
        fingerprint = line_key(max(lines, key=len))
        longest = config.max_boilerplate_words - 1  # spaces in a line of that many words (see _words)
        keys = set(line_keys([ln for ln in lines if ln.count(" ") <= longest]))
        keys.update(map(affix_key, title_affixes(doc.title)))
        self.keys.extend(keys)
        self.group_of.extend([self._group_id(doc.group)] * len(keys))
        self.articles.extend([fingerprint] * len(keys))

    def merge(self, other: LineCounts) -> None:
        """Add another chunk's counts to these."""
        self.docs.update(other.docs)
        if other.groups != self.groups[: len(other.groups)]:
            ids = np.array([self._group_id(group) for group in other.groups], dtype=np.int64)
            self.group_of.extend(ids[np.frombuffer(other.group_of, dtype=np.int64)].tolist())
        else:
            self.group_of.extend(other.group_of)
        self.keys.extend(other.keys)
        self.articles.extend(other.articles)

    def totals(self, cap: int) -> LineTotals:
        """Per (group, line): how many documents carry it, and up to ``cap`` distinct fingerprints."""
        group_of = np.frombuffer(self.group_of, dtype=np.int64)
        keys = np.frombuffer(self.keys, dtype=np.uint64)
        articles = np.frombuffer(self.articles, dtype=np.uint64)
        order = np.lexsort((articles, keys, group_of))
        group_of, keys, articles = group_of[order], keys[order], articles[order]
        n = keys.size
        new_line = np.ones(n, dtype=bool)
        new_line[1:] = (group_of[1:] != group_of[:-1]) | (keys[1:] != keys[:-1])
        starts = np.flatnonzero(new_line)
        line = np.cumsum(new_line) - 1
        new_article = new_line.copy()
        new_article[1:] |= articles[1:] != articles[:-1]
        seen = np.cumsum(new_article)
        rank = seen - seen[starts][line]  # 0 for a line's first distinct fingerprint, 1 for its second ...
        kept = new_article & (rank < cap)
        table = np.zeros((starts.size, cap), dtype=np.uint64)
        table[line[kept], rank[kept]] = articles[kept]
        return LineTotals(
            dict(self.docs),
            list(self.groups),
            group_of[starts],
            keys[starts],
            np.diff(np.append(starts, n)),
            table,
            np.bincount(line[kept], minlength=starts.size),
        )

    def learned(self, config: CleanupConfig) -> dict[str, frozenset[int]]:
        """The line keys that are boilerplate in each group."""
        return self.totals(config.learn_min_docs).learned(config)


@dataclass(slots=True)
class LineTotals:
    """:class:`LineCounts` reduced: one row per (group, line key), with the number of documents that carry
    the line and up to ``learn_min_docs`` of their distinct fingerprints (ascending; ``distinct`` says how
    many). Copies of one article repeat every line, and must not teach that their body is boilerplate: a
    line is learned only from that many distinct articles."""

    docs: dict[str, int]
    groups: list[str]
    group_of: np.ndarray  # int64 index into groups
    keys: np.ndarray  # uint64
    counts: np.ndarray  # int64
    articles: np.ndarray  # (rows, cap) uint64
    distinct: np.ndarray  # int64

    def learned(self, config: CleanupConfig) -> dict[str, frozenset[int]]:
        """The line keys that are boilerplate in each group."""
        floors = np.array(
            [max(config.learn_min_docs, config.learn_min_share * self.docs.get(g, 0)) for g in self.groups]
        )
        if not self.keys.size:
            return {}
        hit = (self.counts >= floors[self.group_of]) & (self.distinct >= config.learn_min_docs)
        found: dict[str, set[int]] = {}
        for group, key in zip(self.group_of[hit].tolist(), self.keys[hit].tolist(), strict=True):
            found.setdefault(self.groups[group], set()).add(key)
        return {group: frozenset(keys) for group, keys in found.items()}


# ---------------------------------------------------------------------------------------------------
# Titles and bylines

_TITLE_SEPARATOR = re.compile(r"\s+[-–—|:·•»]\s+|\s*[|·•»]\s*|:\s+")
_FOLD_TITLE = re.compile(r"[\W_]+")
_SITE_NAME_CHARS = 60


@lru_cache(maxsize=4096)
def _fold(text: str) -> str:
    """Case-folded words joined by single spaces (a title compared with a line)."""
    # The regex's result, several times faster: the dedup key's two halves of [\W_]+ (see normalize).
    if text.isascii():
        return " ".join(text.lower().encode("ascii").translate(ASCII_SEPARATORS).decode("ascii").split())
    data = NON_ASCII_NON_WORD.sub(" ", text.casefold()).encode("utf-8").translate(ASCII_SEPARATORS)
    return b" ".join(data.split()).decode("utf-8")


@lru_cache(maxsize=1024)
def title_variants(title: str) -> frozenset[str]:
    """The folded title, and the title without a site name after or before a separator.

    "Title : Section – Site" gives "title section site", "title section" and "title". A cut-off suffix is
    at most 60 characters; a cut-off prefix must also be shorter than what stays ("Site: A long title"),
    so "A long title | Site" never yields "site".
    """
    variants = {_fold(title)}
    for sep in _TITLE_SEPARATOR.finditer(title):
        head, tail = title[: sep.start()], title[sep.end() :]
        if head and tail and len(tail) <= _SITE_NAME_CHARS:
            variants.add(_fold(head))
        if head and tail and len(head) <= _SITE_NAME_CHARS and len(head) < len(tail):
            variants.add(_fold(tail))
    return frozenset(v for v in variants if v)


def same_title(line: str, title: str) -> bool:
    """Whether ``line`` repeats ``title``, exactly or with a site name added to or removed from either."""
    folded_line, folded_title = _fold(line), _fold(title)
    # Every variant of a title is a word-aligned piece of its folded form (separators are non-word
    # characters), so neither holding the other settles it without computing variants.
    if not folded_line or folded_line not in folded_title and folded_title not in folded_line:
        return False
    if folded_line in title_variants(title):
        return True
    # Each variant of the line is its folded form or a word-aligned start or end of it (the line cut at a
    # separator): a paragraph that neither starts nor ends with the title needs no variants.
    return (
        folded_line.startswith(folded_title) or folded_line.endswith(folded_title)
    ) and folded_title in title_variants(line)


def title_affixes(title: str | None) -> tuple[str, ...]:
    """The parts of a title before its first and after its last separator ("Opinion | Title – Site" gives
    "Opinion" and "Site"): where sites put their name and section."""
    if not title:
        return ()
    seps = list(_TITLE_SEPARATOR.finditer(title))
    if not seps:
        return ()
    head, tail = title[: seps[0].start()].strip(), title[seps[-1].end() :].strip()
    return tuple(part for part in (head, tail) if part and len(part) <= _SITE_NAME_CHARS)


def affix_key(part: str) -> int:
    """The key under which a title affix is counted with a source's lines (it never equals a line's key:
    no normalised line holds a NUL)."""
    return line_key("\0title affix\0" + _fold(part))


def _squeezed(text: str) -> str:
    return "".join(ch for ch in text.casefold() if ch.isalnum())


def _names_the_site(
    part: str, site_name: str | None, hostname: str | None, learned: frozenset[int], by_host: bool = True
) -> bool:
    """Whether a title affix is the site's name or a section of it: the page's og:site_name, the host's
    name ("TechCrunch" on techcrunch.com, "SpaceNews.com", "The GiveWell Blog" on blog.givewell.org), or an
    affix that the source's titles share across distinct articles (learned like its boilerplate lines)."""
    if site_name and _fold(part) == _fold(site_name):
        return True
    if learned and affix_key(part) in learned:
        return True
    if hostname and by_host:
        squeezed = _squeezed(part)
        labels = [label for label in hostname.split(".")[:-1] if len(label) >= 4 and label != "blog"]
        if squeezed and any(_squeezed(label) in squeezed for label in labels):
            return True
        if squeezed == _squeezed(hostname):
            return True
    return False


def strip_title_affixes(
    title: str, site_name: str | None, hostname: str | None, learned: frozenset[int] = frozenset()
) -> str:
    """The title without the site name and section a site adds before or after it ("Title – TechCrunch",
    "Opinion | Title"), one affix at a time from either end, as long as what stays is the longer part.
    A head before a colon is taken for the site's only when it is the site name or learned."""
    while True:
        seps = list(_TITLE_SEPARATOR.finditer(title))
        if not seps:
            return title
        head, tail = title[: seps[0].start()].strip(), title[seps[-1].end() :].strip()
        before, after = title[: seps[-1].start()].strip(), title[seps[0].end() :].strip()
        if (
            tail
            and len(tail) <= _SITE_NAME_CHARS
            and len(before) > len(tail)
            and _names_the_site(tail, site_name, hostname, learned)
        ):
            title = before
        elif (
            head
            and len(head) <= _SITE_NAME_CHARS
            and len(after) > len(head)
            and _names_the_site(
                # "Apple: ..." on apple.com is a headline about the company, not its name put before a title
                head,
                site_name,
                hostname,
                learned,
                by_host=seps[0].group().strip() != ":",
            )
        ):
            title = after
        else:
            return title


def _looks_like_title(line: str) -> bool:
    words = line.split()
    return (
        0 < len(words) <= 30
        and len(line) <= 250
        and not line.endswith((".", ",", ";", ":"))
        or line.endswith("...")
    )


_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
_NAME_WORD = re.compile(
    r"^(?:[A-ZÀ-ÖØ-ÞА-Я][\w'’.-]*|[A-Z]\.|and|&|/|y|e|und|et|de|van|von|der|da|di|del|la|le|bin|al-\w+)$"
)
_BYLINE_SPLIT = re.compile(r"\s+[|•·–—-]\s+|\s*[|•·]\s*")
# "By NAME" in the languages of the rules: von, par, por, di, door, przez, автор.
_BY = re.compile(
    r"^(?:by|written by|words by|story by|posted by|reporting by|author:|von|verfasst von|autor(?:in)?:"
    r"|par|auteur ?:|por:?|escrito por|di|a cura di|door|przez|autor:|автор:?)\s+(?P<rest>.+)$",
    re.I,
)
_POSTED = re.compile(
    r"^(?:posted|published|updated|last updated|first published)(?: on| at)?:?\s+"
    r"(?P<date>.+?)(?:\s+by\s+(?P<author>.+))?$",
    re.I,
)


# The common unambiguous forms of a byline date, read without dateutil (about 60 us a string, more when it
# fails and tries again fuzzily): "2024-11-19", "2024-11-19T10:32:00Z", "November 19, 2024", "Nov. 19, 2024
# 10:32 AM", "19 November 2024 10:32". Each gives what dateutil gives (a property test compares them); every
# other form goes to dateutil.
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ),
        start=1,
    )
    for name in names
}
# The same months in the other languages of the rules (de, fr, es, pt, it, nl; pl and ru in the genitive a
# date takes): "19. November 2024", "3 mars 2021", "12 de enero de 2022", "19 listopada 2024".
_MONTHS.update(
    {
        name: number
        for number, names in enumerate(
            (
                "januar janvier enero janeiro gennaio januari stycznia января jänner",
                "februar février fevrier febrero fevereiro febbraio februari lutego февраля",
                "märz mars marzo março marzo maart marca марта",
                "april avril abril aprile kwietnia апреля",
                "mai mai mayo maio maggio mei maja мая",
                "juni juin junio junho giugno czerwca июня",
                "juli juillet julio julho luglio lipca июля",
                "august août agosto agosto augustus sierpnia августа",
                "september septembre septiembre setembro settembre września сентября",
                "oktober octobre octubre outubro ottobre października октября",
                "november novembre noviembre novembro novembre listopada ноября",
                "dezember décembre decembre diciembre dezembro dicembre december grudnia декабря",
            ),
            start=1,
        )
        for name in names.split()
    }
)
_CLOCK = r"(?:,? (?P<hour>\d{1,2}):(?P<minute>\d{2})(?: ?(?P<half>am|pm))?)?"
_QUICK_DATES = (
    re.compile(
        r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})(?:T(?P<hour>\d{2}):(?P<minute>\d{2})(?::\d{2})?Z?)?"
    ),
    re.compile(rf"(?P<name>[a-z]{{3,9}})\.? (?P<day>\d{{1,2}}), (?P<year>\d{{4}}){_CLOCK}", re.I),
    re.compile(rf"(?P<day>\d{{1,2}}) (?P<name>[a-z]{{3,9}}) (?P<year>\d{{4}}){_CLOCK}", re.I),
    # "19. November 2024", "12 de enero de 2022", "3 mars 2021", "19 listopada 2024" (the other languages)
    re.compile(
        rf"(?:(?:le|el|am|il|dnia) )?(?P<day>\d{{1,2}})\.? (?:de )?(?P<name>[^\W\d_]{{3,11}}) (?:de )?"
        rf"(?P<year>\d{{4}}){_CLOCK}",
        re.I,
    ),
)


def _quick_date(text: str) -> date | None:
    """The date of ``text`` when it has one of the forms above, else None (not a date, or not one of them)."""
    for form in _QUICK_DATES:
        found = form.fullmatch(text)
        if found is None:
            continue
        parts = found.groupdict()
        month = _MONTHS.get(parts["name"].lower()) if "name" in parts else int(parts["month"])
        hour, minute = int(parts["hour"] or 0), int(parts["minute"] or 0)
        if month is None or minute > 59 or (not 1 <= hour <= 12 if parts.get("half") else hour > 23):
            return None
        try:
            return date(int(parts["year"]), month, int(parts["day"]))
        except ValueError:
            return None
    return None


# Remembered: a corpus repeats its date strings (a site's articles of a day share one).
@lru_cache(maxsize=8192)
def parse_date(text: str) -> str | None:
    """An ISO date (``YYYY-MM-DD``) from a date string that names a year, else None."""
    text = text.strip().rstrip(".")
    if not _YEAR.search(text) or len(text) > 60:
        return None
    quick = _quick_date(text)
    if quick is not None:
        return quick.isoformat() if 1990 <= quick.year <= 2100 else None
    try:
        from dateutil import parser as date_parser  # noqa: PLC0415 - imported where a date is parsed

        parsed = date_parser.parse(text, fuzzy=False, ignoretz=True, default=datetime(1900, 1, 1))
    except (ValueError, OverflowError):
        try:  # "Nov 19, 2024 10:32 AM EST" and the like, with words dateutil does not know around them
            parsed = date_parser.parse(text, fuzzy=True, ignoretz=True, default=datetime(1900, 1, 1))
        except (ValueError, OverflowError):
            return None
        if not re.search(r"\d{1,2}", text.replace(str(parsed.year), "")):
            return None
    if parsed.year < 1990 or parsed.year > 2100:
        return None
    return parsed.date().isoformat()


# Lower-case words a byline may hold besides names ("By Kyiv Wire staff", "By our correspondent").
_ROLE_WORDS = {
    "staff",
    "reporter",
    "reporters",
    "correspondent",
    "correspondents",
    "writer",
    "writers",
    "editor",
    "editors",
    "desk",
    "team",
    "contributor",
    "our",
    "the",
    "report",
    "reports",
    "redacción",
    "redaktion",
    "rédaction",
    "redazione",
    "redactie",
    "redakcja",
    "redação",
    "редакция",
}


def _author_name(text: str) -> str | None:
    text = text.strip().rstrip(",;-–—| ")
    text = re.split(r",\s*(?:reuters|ap|afp|associated press|staff|bloomberg)\b", text, flags=re.I)[0]
    words = text.replace(",", " , ").split()
    names = [w for w in words if w != ","]
    capitalised = [w for w in names if w.casefold() not in _ROLE_WORDS]
    if not 1 <= len(names) <= 8 or not capitalised or not all(_NAME_WORD.match(w) for w in capitalised):
        return None
    return text.strip()


def parse_byline(line: str) -> tuple[str | None, str | None] | None:
    """``(author, date)`` when ``line`` is a byline or dateline, else None.

    Recognised: "By NAME", "By NAME | DATE", "By NAME, DATE", "Posted on DATE by NAME", "Published: DATE",
    and a line that is only a date. Only short lines qualify; a sentence starting with "By the end of..."
    fails the name check and stays.
    """
    if len(line) > 160:
        return None
    by = _BY.match(line)
    if by:
        parts = _BYLINE_SPLIT.split(by.group("rest"))
        author_part, date = parts[0], None
        for part in parts[1:]:
            date = date or parse_date(part)
        if date is None and "," in author_part:
            head, _, tail = author_part.partition(",")
            if parse_date(tail):
                author_part, date = head, parse_date(tail)
        author = _author_name(author_part)
        handle = by.group("rest")
        if author is None and date is None and re.fullmatch(r"[\w.-]{3,40}", handle):
            author = handle  # "von zahlenzauberin": a blogger's handle after the word for "by"
        return (author, date) if author or date else None
    posted = _POSTED.match(line)
    if posted:
        date = parse_date(_BYLINE_SPLIT.split(posted.group("date"))[0])
        author = _author_name(posted.group("author")) if posted.group("author") else None
        return (author, date) if date or author else None
    # A line that is only a date: no word but date words (checked first, as it is cheaper than parsing).
    if (
        _words(line) <= 8
        and not line.endswith("?")
        and not _OTHER_WORD.search(_DATE_WORDS.sub("", line.casefold()))
    ):
        date = parse_date(line)
        if date:
            return (None, date)
    return None


_DATE_WORDS = re.compile(
    r"(?i)\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec|mon|tue|wed|thu|fri|sat|sun|updated|published"
    r"|am|pm|gmt|utc|[ecmp][sd]t|at|on|of|the)\w*"
    # the months of the other languages, and their words for "on", "of", "the"
    r"|\b(?:"
    + "|".join(sorted((m for m in _MONTHS if not m.isascii() or len(m) > 3), key=len, reverse=True))
    + r"|le|el|de|am|il|dnia)\b"
)
_OTHER_WORD = re.compile(r"[a-z]{3,}")


# ---------------------------------------------------------------------------------------------------
# The cleanup itself


def _short(line: str, config: CleanupConfig) -> bool:
    return _words(line) <= config.max_boilerplate_words


def _hard_wrapped(lines: list[str]) -> bool:
    """Whether lines are fixed-width wrapped prose (e-mail, plain-text archives) rather than paragraphs."""
    if len(lines) < 4:
        return False
    open_ended = sum(1 for ln in lines if not ln.rstrip().endswith((".", "!", "?", '"', "”", "’", ":", ")")))
    widths = sorted(len(ln) for ln in lines)
    return open_ended >= 0.5 * len(lines) and 40 <= widths[len(widths) // 2] <= 100


def paragraph_lines(text: str) -> list[str]:
    """Lines of normalised text with ``""`` between paragraphs.

    Blank lines separate paragraphs. Text with no blank line at all has one paragraph per line, unless its
    lines are hard-wrapped prose, which stays one paragraph.
    """
    lines = text.split("\n")
    if "" in lines or _hard_wrapped(lines):
        return lines
    return [part for line in lines for part in (line, "")][:-1]


def _join_paragraphs(lines: list[str], drop: set[int], content: list[int]) -> str:
    """The kept lines (``content``: the non-empty ones, in order; ``drop``: those removed) as text, a
    blank line between paragraphs.

    Where the kept lines run unbroken from the first to the last (boilerplate comes off the ends), that is
    the lines between them as they stand: ``lines`` comes from normalised text, with one empty line
    between paragraphs.
    """
    kept = [i for i in content if i not in drop]
    if not kept:
        return ""
    first, last = kept[0], kept[-1]
    if not any(first < i < last for i in drop):
        return "\n".join(lines[first : last + 1])
    return _join_blocks(lines, drop)


def _join_blocks(lines: list[str], drop: set[int]) -> str:
    """The plain join: each run of kept non-empty lines a paragraph, paragraphs a blank line apart."""
    blocks: list[str] = []
    current: list[str] = []
    for i, line in enumerate(lines + [""]):
        if not line:
            if current:
                blocks.append("\n".join(current))
            current = []
        elif i not in drop:
            current.append(line)
    return "\n\n".join(blocks)


def _title_anchor(
    lines: list[str], content: list[int], title: str | None, config: CleanupConfig
) -> int | None:
    """Position in ``content`` of the title line, where the title stands (repeated) near the head.

    With a known title, the first head line that repeats it; without one, the first head line that the
    next few lines repeat ("Title | Site" then "Title"). Only when every line before it is short: those
    are page chrome (site name, navigation) that a scraper saved above the article.
    """
    head = content[:10]
    for pos, i in enumerate(head):
        line = lines[i]
        if title:
            found = same_title(line, title)
        else:
            # A repeated line is a title even when it ends in a period ("Take C.A.R.E.").
            found = _words(line) <= 30 and any(same_title(lines[j], line) for j in head[pos + 1 : pos + 4])
        if found:
            return pos if all(_words(lines[j]) <= 12 for j in head[:pos]) else None
        if _words(line) > config.max_boilerplate_words:
            return None
    return None


# Link labels of navigation and share widgets, in the languages of the rules: a scraper that glues a widget's
# links into one line ("Home News Sport Share Facebook Twitter WhatsApp Email") leaves a line of these.
WIDGET_WORDS = frozenset(
    "home menu search login log sign subscribe newsletter share shares tweet facebook twitter x"
    " whatsapp email e-mail mail print linkedin pinterest reddit telegram tumblr flipboard messenger"
    " copy link comments comment instagram youtube tiktok rss startseite suche teilen drucken"
    " kommentare accueil rechercher partager imprimer inicio buscar compartir imprimir início"
    " pesquisar compartilhar partilhar cerca condividi stampa zoeken delen szukaj udostępnij drukuj"
    " главная поиск поделиться".split()
)
WIDGET_ROW_WORDS = 8


def widget_row(line: str) -> bool:
    """Whether a line is a widget's link labels glued together (known by its shape, whatever its length): at
    least ``WIDGET_ROW_WORDS`` words, no sentence punctuation, every word capitalised or not a word, and at
    least four distinct widget labels (``WIDGET_WORDS``) making up two words in five (a headline in title case
    that names three networks is not one)."""
    # the punctuation first: a body line almost always has some, and the test costs less than the split
    if any(mark in line for mark in ".,;!?"):
        return False
    words = line.split()
    if len(words) < WIDGET_ROW_WORDS:
        return False
    if not all(not word[0].isalpha() or word[0].isupper() for word in words):
        return False
    labels = [word.casefold() for word in words if word.casefold() in WIDGET_WORDS]
    return len(set(labels)) >= 4 and len(labels) * 5 >= 2 * len(words)


def clean_document(
    doc: Document, rules: BoilerplateRules, learned: frozenset[int], config: CleanupConfig
) -> Document | Rejection:
    """Strip title repeats, bylines and boilerplate from a normalised document.

    Fills ``title`` (from the first line of plain text where it looks like one), ``author`` and ``date``
    (from a byline) where they were empty, then ``date`` from ``fetched`` (when the page was fetched) where
    still empty. Returns a ``no_main_text`` rejection when nothing is left.
    """
    lines = paragraph_lines(doc.body)
    content = [i for i, line in enumerate(lines) if line]
    non_empty = content
    drop: set[int] = set()

    def is_edge_boilerplate(line: str) -> bool:
        return _short(line, config) and (
            rules.matches("edge", line) or bool(learned) and line_key(line) in learned
        )

    # Head: page chrome above a repeated title, then boilerplate, the title and its repeats, one byline.
    title_from_text = doc.title is None
    anchor = _title_anchor(lines, content, doc.title, config)
    if anchor is not None:
        drop.update(content[:anchor])
        if doc.title is None:
            doc.title = lines[content[anchor]]
            drop.add(content[anchor])
        content = content[anchor:]
    byline_seen = False
    for pos, i in enumerate(content):
        line = lines[i]
        if is_edge_boilerplate(line):
            pass
        elif doc.title and same_title(line, doc.title):
            # Keep the shorter form as the title: "Title" rather than "Title | Site".
            if title_from_text and len(line) < len(doc.title):
                doc.title = line
        elif (
            title_from_text
            and doc.title is None
            and pos + 1 < len(content)
            and _looks_like_title(line)
            and not lines[i + 1]
        ):
            doc.title = line
        elif not byline_seen and (byline := parse_byline(line)):
            byline_seen = True
            doc.author = doc.author or byline[0]
            doc.date = doc.date or byline[1]
        else:
            break
        drop.add(i)
    content = [i for i in content if i not in drop]
    _strip_tail(lines, content, drop, is_edge_boilerplate, rules, config)
    credits = _closing_credits(lines, content, drop, rules)
    longest = config.max_boilerplate_words - 1  # spaces in a line of that many words (see _words)
    for i in content:
        line = lines[i]
        if (
            line.count(" ") <= longest
            and i not in drop
            and i not in credits
            and (rules.matches("anywhere", line) or bool(learned) and line_key(line) in learned)
        ):
            drop.add(i)
        elif i not in drop and widget_row(line):
            drop.add(i)
    doc.credits.extend(lines[i] for i in credits)
    body = _join_paragraphs(lines, drop, non_empty)
    doc.removed.extend(lines[i] for i in sorted(drop))
    if not body:
        return Rejection(
            doc.source,
            "no_main_text",
            f"nothing left after removing {len(drop)} boilerplate line(s)",
            stage="cleanup",
        )
    doc.body = body
    if doc.title:
        doc.title = strip_title_affixes(doc.title, doc.site_name, doc.hostname, learned)
    # Last: a date the input's fields, the page or a byline give is when it was published; the fetch
    # date only says it existed by then.
    doc.date = doc.date or doc.fetched
    return doc


CLOSING_LINES = 3  # a credit among the body's last lines closes it


def _closing_credits(
    lines: list[str], content: list[int], drop: set[int], rules: BoilerplateRules
) -> list[int]:
    """Credit lines that close the article ("Originally published on ...", "© Reuters", "Copyright 2019
    ... All rights reserved.", "Reporting by ..."): the ``[credit]`` lines among the body's last
    ``CLOSING_LINES`` lines, and those right after it before any other removed line. They are the
    article's, not the site's: taken back from ``drop`` (the tail strip took them as edge boilerplate) and
    returned, to be listed in the record's ``credits`` as well as kept in its text.

    A credit line after site chrome (a newsletter prompt, a share row) is the site's footer and stays
    removed; one at the head or between paragraphs (a photo credit by an image) is not a closing credit.
    """
    kept = [i for i in content if i not in drop]
    if not kept:
        return []
    # Among the body's last lines (a copy may add a sentence after the credit), never its first line.
    credits = [i for i in kept[1:][-CLOSING_LINES:] if rules.matches("credit", lines[i])]
    for i in content:
        if i <= kept[-1]:
            continue
        if not rules.matches("credit", lines[i]):
            break
        credits.append(i)
    drop.difference_update(credits)
    return credits


# A word, for the minimum length: a run of letters or digits; a character of a script written without spaces
# between words (Thai, Lao, Myanmar, Khmer, kana, Han) counts as one. A Chinese word is one or two
# characters, a Thai word several: lenient, which is the safe side of a rule that rejects.
_UNSPACED = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(f"[{_UNSPACED}]|[^\\W_{_UNSPACED}]+")
# A sentence: a line of at least SENTENCE_WORDS words ending in a full stop, ! ? or an ellipsis (CJK forms
# too), maybe inside closing quotes or brackets. Menus, buttons and headings do not end like that.
SENTENCE_WORDS = 4
_SENTENCE_END = re.compile("[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019\u00bb)\\]]*\\Z")


def require_min_words(doc: Document, config: CleanupConfig) -> Document | Rejection:
    """The document, or its ``too_short`` rejection when its clean text has fewer than
    ``config.min_words`` words and no line that reads as a sentence (see :class:`CleanupConfig`).

    Example: "Home About" and "Short." are rejected, "Police closed the road after the crash." is kept.
    """
    if not config.min_words:
        return doc
    words = sum(1 for _ in islice(_WORD.finditer(doc.body), config.min_words))  # stops at min_words
    if words >= config.min_words:
        return doc
    for line in doc.body.split("\n"):
        if _SENTENCE_END.search(line) and len(_WORD.findall(line)) >= SENTENCE_WORDS:
            return doc
    return Rejection(
        doc.source,
        "too_short",
        f"{words} word{'s' * (words != 1)} and no sentence: not an article (--min-words {config.min_words})",
        stage="cleanup",
    )


def _strip_tail(
    lines: list[str],
    content: list[int],
    drop: set[int],
    is_edge_boilerplate,
    rules: BoilerplateRules,
    config: CleanupConfig,
) -> None:
    """Drop the boilerplate run at the end, and a trailing block of short lines under a tail-cut heading."""
    remaining = [i for i in content if i not in drop]
    # Once a scan for a heading stops at a long line and finds none, later scans (after lines are taken
    # off the end) stop at that same line and find none either, until that line itself is taken off.
    stop = None
    while remaining:
        # A "Related" / "Share this:" heading followed only by short lines: cut from the heading down.
        cut = None
        if stop is None:
            for pos in range(len(remaining) - 1, max(len(remaining) - 41, 0), -1):
                line = lines[remaining[pos]]
                if _words(line) > 20:
                    stop = remaining[pos] if cut is None else None
                    break
                if rules.matches("tail_cut", line):
                    cut = pos
        if cut:
            drop.update(remaining[cut:])
            del remaining[cut:]
            continue
        if not is_edge_boilerplate(lines[remaining[-1]]):
            return
        popped = remaining.pop()
        drop.add(popped)
        if popped == stop:
            stop = None
