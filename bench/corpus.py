"""A deterministic corpus of distinct scraped-text articles at any size, with a share of syndicated copies.

Words are drawn from the vocabulary of the real articles in tests/data (with their frequencies), so texts
have a realistic length and word distribution; every article is distinct unless made a copy on purpose.
Each file carries its site's scraped boilerplate (a header, a repeated title, a footer).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

from tests.corpus import SAMPLE_BENCHMARK

SITES = 20
HEADER = "Skip to content\n\n{site} | Home | News | Sport\n\n"
FOOTER = (
    "\n\nShare this:\nTwitter\nFacebook\n\n"
    "The post {title} appeared first on {site}.\n\nExit mobile version\n"
)


def vocabulary() -> tuple[np.ndarray, np.ndarray]:
    truth = json.loads((SAMPLE_BENCHMARK / "ground-truth.json").read_text(encoding="utf-8"))
    counts = Counter(
        w for item in truth.values() for w in re.findall(r"[A-Za-z][a-z']+", item["articleBody"])
    )
    words = np.array(sorted(counts))
    weights = np.array([counts[w] for w in words], dtype=float)
    return words, weights / weights.sum()


def generate(root: Path, count: int, seed: int = 0, copy_share: float = 0.1, start: int = 0) -> int:
    """Write ``count`` articles under ``root`` (numbered from ``start``); return the bytes written."""
    rng = np.random.default_rng(seed)
    words, weights = vocabulary()
    written = 0
    bodies: list[str] = []
    for n in range(start, start + count):
        site = f"site{n % SITES:02d}"
        if bodies and rng.random() < copy_share:
            body = bodies[
                int(rng.integers(len(bodies)))
            ]  # a syndicated copy, under another site's boilerplate
            title = body.split(".", 1)[0][:70]
        else:
            paragraphs = []
            for _ in range(int(rng.integers(4, 8))):
                sentence_words = rng.choice(words, size=int(rng.integers(40, 90)), p=weights)
                paragraphs.append(" ".join(sentence_words).capitalize() + ".")
            body = "\n\n".join(paragraphs)
            title = " ".join(rng.choice(words, size=8, p=weights)).capitalize()
            if len(bodies) < 5000:
                bodies.append(body)
        text = (
            HEADER.format(site=site) + f"{title}\n\n{title}\n\n{body}" + FOOTER.format(title=title, site=site)
        )
        path = root / site / f"{n:07d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written += len(text.encode("utf-8"))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("count", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--copy-share", type=float, default=0.1)
    args = parser.parse_args()
    written = generate(args.root, args.count, args.seed, args.copy_share, args.start)
    print(f"{args.count} files, {written / 1e6:.1f} MB under {args.root}")


if __name__ == "__main__":
    main()
