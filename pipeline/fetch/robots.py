"""robots.txt (RFC 9309): the rules that apply to our user agent on one site, and a cache of them per site."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309 asks crawlers to parse at least 500 KiB; the rest is ignored


@dataclass(frozen=True, slots=True)
class RobotsRules:
    """The robots.txt rules that apply to our user agent on one site.

    urllib.robotparser is not used: it ignores the ``*`` and ``$`` wildcards news sites use
    (``Disallow: /*?share=``) and takes the first matching rule, where RFC 9309 and Google take the longest.
    """

    rules: tuple[tuple[bool, re.Pattern[str], int], ...] = ()  # (allow, pattern, length of the rule)
    crawl_delay: float | None = None
    note: str = ""  # why the site is off limits as a whole (robots.txt unreachable ...)
    reason: str = "robots_disallowed"  # the reason code of a page these rules refuse

    @classmethod
    def allow_all(cls) -> RobotsRules:
        return cls()

    @classmethod
    def disallow_all(cls, note: str, reason: str = "robots_disallowed") -> RobotsRules:
        return cls(rules=((False, re.compile(""), 1),), note=note, reason=reason)

    @classmethod
    def parse(cls, text: str, token: str) -> RobotsRules:
        """The rules of the groups for ``token`` (case-insensitive), else of the ``*`` groups."""
        groups: list[tuple[list[str], list[tuple[str, str]]]] = []
        in_agents = False
        for raw_line in text.splitlines():
            line = raw_line.split("#", 1)[0].strip()
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip().lower(), value.strip()
            if key == "user-agent":
                if not in_agents:
                    groups.append(([], []))
                    in_agents = True
                groups[-1][0].append(re.split(r"[/\s]", value, maxsplit=1)[0].lower())
            elif key in ("allow", "disallow", "crawl-delay") and groups:
                in_agents = False
                groups[-1][1].append((key, value))
        chosen = [lines for agents, lines in groups if token in agents]
        if not chosen:
            chosen = [lines for agents, lines in groups if "*" in agents]
        rules: list[tuple[bool, re.Pattern[str], int]] = []
        delay: float | None = None
        for lines in chosen:
            for key, value in lines:
                if key == "crawl-delay":
                    try:
                        delay = max(delay or 0.0, float(value))
                    except ValueError:
                        pass
                elif value:  # an empty Disallow allows everything, an empty Allow says nothing
                    pattern = _robots_path(value)
                    rules.append((key == "allow", _robots_pattern(pattern), len(pattern)))
        return cls(rules=tuple(rules), crawl_delay=delay)

    def allows(self, target: str) -> bool:
        """Whether the path-and-query ``target`` may be fetched: the longest matching rule decides, an
        allow wins a tie, no matching rule allows."""
        target = _robots_path(target)
        best: tuple[int, bool] | None = None
        for allow, pattern, length in self.rules:
            if pattern.match(target) and (best is None or (length, allow) > best):
                best = (length, allow)
        return best is None or best[1]


def _robots_path(path: str) -> str:
    """A path percent-encoded the one way (UTF-8, upper-case escapes), so rules and URLs compare alike."""
    encoded = quote(path, safe="/?=&;:@!$'()*+,-._~%")
    return re.sub(r"%[0-9a-f]{2}", lambda m: m.group(0).upper(), encoded)


def _robots_pattern(rule: str) -> re.Pattern[str]:
    anchored = rule.endswith("$")
    body = ".*".join(re.escape(part) for part in rule.rstrip("$").split("*"))
    return re.compile(body + (r"\Z" if anchored else ""))


class RobotsCache:
    """robots.txt rules per site (scheme, host, port), each fetched once per run, safe across threads."""

    def __init__(self) -> None:
        self._rules: dict[str, RobotsRules] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, origin: str, load: Callable[[], RobotsRules]) -> RobotsRules:
        """The rules of ``origin``, calling ``load`` the first time (other threads wait for it)."""
        with self._lock:
            site_lock = self._locks.setdefault(origin, threading.Lock())
        with site_lock:
            if origin not in self._rules:
                self._rules[origin] = load()
            return self._rules[origin]
