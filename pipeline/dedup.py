"""Exact and near-duplicate detection: content hash, MinHash LSH candidates, measured verification,
union-find clusters and a deterministic choice of the record each cluster keeps.

Documents are added one at a time in a fixed order (sorted input paths), so the result does not depend on
the number of workers. Memory holds per document only a few scalars and the LSH band keys; the shingle
sets used to measure similarity live in append-only files next to the index
(:class:`~pipeline.index.SetFiles`).

Candidates come from two indexes:

- MinHashLSH bands tuned for ``threshold - 0.2`` (``signature.LSH_MARGIN``): datasketch's bands for 0.8
  itself find only 40% of pairs at Jaccard 0.8 and 69% at 0.85; for 0.6 they find 98.6% and 99.9%, and
  every candidate is verified exactly anyway, so the extra candidates cost a few set intersections;
- the first ``PREFIX_TOKENS`` words of the dedup key: a copy cut short ("Continue reading") starts like
  the full article but its Jaccard with it is low, so LSH alone would miss it.

Every candidate pair is verified on the real shingle sets: Jaccard >= ``threshold``, or containment >=
``containment`` with the shorter side holding at least ``min_containment_shingles`` shingles, or, for a
pair just below the threshold (Jaccard >= ``rewrite_threshold``), the second check of light rewrites.

Light rewrites: a copy with one word in forty changed differs in about five word 5-shingles of forty, so
its Jaccard is about 0.78, under the threshold. Lowering the threshold would merge distinct short articles
written from one template ("Police in Springfield arrested 3 people on Tuesday ..." and the same brief of
another town, figure and day), which share most of their shingles too. What tells them apart is what
differs: a rewrite changes ordinary words and keeps the story's names and figures; two stories from one
template share the template's words and differ in the names and figures. So a pair with Jaccard in
[``rewrite_threshold``, ``threshold``) is a near duplicate ("rewrite") when the two texts' names and
figures (:func:`pipeline.normalize.name_key`: words with a digit, capitalised words that do not open a
sentence; stored per document like the shingle sets) agree: at least ``min_names`` of them in the two
together, and at most ``names_tolerance`` of them (of their union; at least one) in one text only.

Which record a cluster keeps (the representative policy): the longest clean text; on a tie the earliest
date (documents without a date come last); on a tie the smallest ``source``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from pipeline.index import Index
from pipeline.signature import MinHashConfig, containment, jaccard, pack_sets

_NONE = np.empty(0, dtype=np.uint32)

PREFIX_TOKENS = 25
MAX_PREFIX_BUCKET = 64  # candidates per prefix; beyond this a prefix is a template, not an article
OLD_MEMBERS_CHECKED = 3  # members of an earlier cluster verified besides its kept record
NEW_MEMBERS_CHECKED = 8  # members of one of this run's clusters verified against a new document


@dataclass(frozen=True, slots=True)
class Signed:
    """What dedup needs of one clean document (a worker's compact result)."""

    id: str
    source: str
    content_hash: str
    length: int
    date: str | None
    shingles: np.ndarray  # sorted unique uint32 shingle hashes
    bands: np.ndarray  # int64 LSH band keys of its MinHash signature (see Signer.hashranges)
    prefix: int | None  # hash of the first PREFIX_TOKENS dedup tokens, when the text has that many
    names: np.ndarray = field(default_factory=lambda: _NONE)  # sorted unique uint32 hashes of its names


@dataclass(frozen=True, slots=True)
class SignedBatch:
    """The dedup view of a chunk's documents in columns: what a worker sends back, pickled as a few lists
    and three arrays rather than hundreds of small objects (half the parent's unpickling time)."""

    ids: list[str]
    sources: list[str]
    content_hashes: list[str]
    lengths: list[int]
    dates: list[str | None]
    prefixes: list[int | None]
    shingles: np.ndarray  # every document's shingle set, concatenated
    offsets: np.ndarray  # document i's set is shingles[offsets[i] : offsets[i + 1]]
    bands: np.ndarray  # (documents, bands) int64
    names: np.ndarray  # every document's name set (see pipeline.normalize.name_key), concatenated
    name_offsets: np.ndarray  # document i's names are names[name_offsets[i] : name_offsets[i + 1]]

    @classmethod
    def of(cls, docs: list[Signed]) -> SignedBatch:
        return cls(
            [doc.id for doc in docs],
            [doc.source for doc in docs],
            [doc.content_hash for doc in docs],
            [doc.length for doc in docs],
            [doc.date for doc in docs],
            [doc.prefix for doc in docs],
            *pack_sets([doc.shingles for doc in docs]),
            np.stack([doc.bands for doc in docs]) if docs else np.empty((0, 0), np.int64),
            *pack_sets([doc.names for doc in docs]),
        )

    def __len__(self) -> int:
        return len(self.ids)

    def documents(self) -> Iterator[Signed]:
        bounds, name_bounds = self.offsets.tolist(), self.name_offsets.tolist()
        for i in range(len(self.ids)):
            yield Signed(
                self.ids[i],
                self.sources[i],
                self.content_hashes[i],
                self.lengths[i],
                self.dates[i],
                self.shingles[bounds[i] : bounds[i + 1]],
                self.bands[i],
                self.prefixes[i],
                self.names[name_bounds[i] : name_bounds[i + 1]],
            )


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one duplicate: which record it duplicates, how, and why it lost."""

    duplicate_of: str
    kind: str  # "exact" or "near"
    similarity: float  # measured Jaccard with the kept record
    containment: float  # share of the smaller shingle set found in the other
    matched: str  # id of the document it was linked to (the kept one, or a copy of it)
    reason: str
    # how that link was verified: "exact", "jaccard", "containment" or "rewrite" (the second check of
    # light rewrites); None for a copy linked only by others to its cluster
    how: str | None = None


class Deduplicator:
    """Streams signed documents in, and says at the end which are kept and which duplicate what.

    With an :class:`~pipeline.index.Index`, documents of earlier runs are candidates too. Their clusters
    are settled: a new copy of an article kept earlier becomes a duplicate of that kept record, even when
    it would rank first, because a record already handed out is never withdrawn (ids stay stable for
    whoever consumed the earlier output). For the same reason two clusters kept apart earlier are not
    merged when a new document resembles both: it joins the one it is most similar to.
    """

    def __init__(self, config: MinHashConfig, index: Index | None = None) -> None:
        self.config = config
        self._owns_index = index is None
        self.index: Index = index if index is not None else Index(None, config.fingerprint())
        self.base: int = self.index.next_idx  # documents of this run get idx base, base + 1, ...
        self._exact: dict[str, int] = {}
        self._prefix: dict[int, list[int]] = {}
        self._parent: list[int] = []
        self._anchor: dict[int, int] = {}  # cluster root -> idx of the record an earlier run kept
        self._docs: list[tuple[str, str, str, int, str | None]] = []  # id, source, hash, length, date
        self._prefixes: list[int | None] = []
        # doc -> (what it was linked to, how): ("new", i) or ("old", idx) and "exact"/"jaccard"/"containment"
        # /"rewrite"
        self._link: dict[int, tuple[str, int, str]] = {}
        self.pairs_checked = 0
        self.pairs_verified = 0
        self.rewrite_pairs = 0  # pairs verified by the second check (names and figures agree)
        self.rewrite_refused = 0  # pairs in [rewrite_threshold, threshold) whose names and figures differ
        self.bridges_refused = 0

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, doc: Signed) -> None:
        """Add one document: link it to the earlier documents it duplicates."""
        self.add_chunk(SignedBatch.of([doc]))

    def add_chunk(self, batch: SignedBatch) -> None:
        """Add documents in order: link each to the earlier documents it duplicates. Their LSH look-ups
        run as one batch (see :class:`~pipeline.bands.BandTable`)."""
        if not len(batch):
            return
        first = len(self._docs)
        self.index.shingle_files.extend(batch.shingles, np.diff(batch.offsets).tolist())
        self.index.name_files.extend(batch.names, np.diff(batch.name_offsets).tolist())
        # A copy of a text this run has seen is settled by its hash (see _add): its band keys would add
        # nothing and its look-up find what its first copy found (a file of a million identical records
        # would otherwise cost a million look-ups of the fullest buckets).
        fresh = np.ones(len(batch), dtype=bool)
        in_batch: set[str] = set()
        for pos, content_hash in enumerate(batch.content_hashes):
            if content_hash in self._exact or content_hash in in_batch:
                fresh[pos] = False
            in_batch.add(content_hash)
        # The chunk's own keys go in first, so its documents find each other; each keeps the earlier ones.
        self.index.bands.add(batch.bands, self.base + first, fresh)
        found = iter(self.index.bands.candidates(batch.bands[fresh]))
        banded_all = [next(found) if is_fresh else [] for is_fresh in fresh]
        for pos, (doc, banded) in enumerate(zip(batch.documents(), banded_all, strict=True)):
            index = first + pos
            own = self.base + index
            old_candidates = {c for c in banded if c < self.base}
            candidates = {c - self.base for c in banded if self.base <= c < own}
            self._add(index, doc, candidates, old_candidates)
        # Rows now, while the workers clean the next chunks; a duplicate's rep is set by ``save``.
        self.index.add_documents(
            (self.base + i, *self._docs[i], self.base + i, self._prefixes[i])
            for i in range(first, len(self._docs))
        )

    def _add(self, index: int, doc: Signed, candidates: set[int], old_candidates: set[int]) -> None:
        self._docs.append((doc.id, doc.source, doc.content_hash, doc.length, doc.date))
        self._parent.append(index)
        self._prefixes.append(doc.prefix)
        has_old = self.base > 0  # earlier runs' documents: look them up in the index
        old = self.index.exact(doc.content_hash) if has_old else None
        if old is not None:
            self._anchor_to(index, old, "exact")
            return
        first = self._exact.get(doc.content_hash)
        if first is not None:
            if self._union(first, index):
                self._link[index] = ("new", first, "exact")
                self._link.setdefault(first, ("new", index, "exact"))
            return
        self._exact[doc.content_hash] = index
        if doc.prefix is not None:
            bucket = self._prefix.setdefault(doc.prefix, [])
            candidates.update(bucket)
            if len(bucket) < MAX_PREFIX_BUCKET:
                bucket.append(index)
            if has_old:
                old_candidates.update(self.index.prefix_candidates(doc.prefix, MAX_PREFIX_BUCKET))
        if old_candidates:
            best_old = self._best_old_match(doc, old_candidates)
            if best_old is not None:
                self._anchor_to(index, best_old[1], best_old[2])
        if not candidates:
            return  # most documents: nothing of this run to compare with
        candidates = self._few_per_cluster(candidates)
        verified: dict[int, str] = {}
        best = self._best_match(
            doc,
            {c for c in candidates if self._find(c) != self._find(index)},
            self._shingles,
            self._names,
            verified=verified,
        )
        for other in sorted(verified):
            if self._find(other) != self._find(index) and self._union(other, index):
                # an earlier document that matched nothing when it came is linked to this one
                self._link.setdefault(other, ("new", index, verified[other]))
        if best is not None and index not in self._link:
            self._link[index] = ("new", best[1], best[2])

    def _few_per_cluster(self, candidates: set[int]) -> set[int]:
        """The earliest ``NEW_MEMBERS_CHECKED`` candidates of each cluster of this run: a document that
        resembles a cluster resembles its first members as well as its later ones, and checking them all
        made a flood of near-identical documents (template pages, one notice repeated with a counter)
        quadratic (100,000 such records: 32 million comparisons, 6 minutes)."""
        per_root: dict[int, int] = {}
        kept = set()
        for other in sorted(candidates):
            root = self._find(other)
            if per_root.get(root, 0) < NEW_MEMBERS_CHECKED:
                per_root[root] = per_root.get(root, 0) + 1
                kept.add(other)
        return kept

    def _best_match(
        self,
        doc: Signed,
        candidates: Iterable[int],
        shingles_of: Callable[[int], np.ndarray],
        names_of: Callable[[int], np.ndarray],
        first: bool = False,
        verified: dict[int, str] | None = None,
    ) -> tuple[float, int, str] | None:
        """The verified candidate with the highest Jaccard (or the first verified), and how; each verified
        candidate and how into ``verified``."""
        best: tuple[float, int, str] | None = None
        for other in candidates if first else sorted(candidates):
            self.pairs_checked += 1
            found = self._verify(doc, shingles_of(other), partial(names_of, other))
            if found is not None:
                self.pairs_verified += 1
                how, score = found
                if verified is not None:
                    verified[other] = how
                if best is None or score > best[0]:
                    best = (score, other, how)
                if first:
                    break
        return best

    def _best_old_match(self, doc: Signed, candidates: set[int]) -> tuple[float, int, str] | None:
        """The best verified match among earlier documents, checking each earlier cluster through its kept
        record first and at most ``OLD_MEMBERS_CHECKED`` other members: a run's cost then grows with the
        clusters its documents touch, not with how many copies those clusters hold."""
        best: tuple[float, int, str] | None = None
        for rep, members in sorted(self.index.reps(candidates).items()):
            order = [rep] + [m for m in members if m != rep][:OLD_MEMBERS_CHECKED]
            found = self._best_match(doc, order, self.index.shingles, self.index.names, first=True)
            if found is not None and (best is None or found[0] > best[0]):
                best = found
        return best

    def _anchor_to(self, index: int, old_idx: int, how: str) -> None:
        rep = self.index.doc(old_idx).rep
        root = self._find(index)
        if self._anchor.get(root, rep) != rep:
            self.bridges_refused += 1
            return
        self._anchor[root] = rep
        self._link[index] = ("old", old_idx, how)

    def _verify(
        self, doc: Signed, theirs: np.ndarray, their_names: Callable[[], np.ndarray]
    ) -> tuple[str, float] | None:
        """How ``doc`` and a candidate with shingle set ``theirs`` are near duplicates, and their Jaccard;
        None when they are not. The candidate's names are read only for the second check."""
        config, ours = self.config, doc.shingles
        score = jaccard(ours, theirs)
        if score >= config.threshold:
            return "jaccard", score
        if (
            min(ours.size, theirs.size) >= config.min_containment_shingles
            and containment(ours, theirs) >= config.containment
        ):
            return "containment", score
        if score >= config.rewrite_threshold:
            if names_agree(doc.names, their_names(), config):
                self.rewrite_pairs += 1
                return "rewrite", score
            self.rewrite_refused += 1
        return None

    def _find(self, i: int) -> int:
        parent = self._parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def _union(self, a: int, b: int) -> bool:
        """Join two clusters, unless each already belongs to a different record kept by an earlier run."""
        ra, rb = self._find(a), self._find(b)
        if ra == rb:
            return True
        anchors = {self._anchor[r] for r in (ra, rb) if r in self._anchor}
        if len(anchors) > 1:
            self.bridges_refused += 1
            return False
        root, child = min(ra, rb), max(ra, rb)
        self._parent[child] = root
        self._anchor.pop(child, None)
        if anchors:
            self._anchor[root] = anchors.pop()
        return True

    def _rank(self, i: int) -> tuple[int, bool, str, str]:
        _, source, _, length, date = self._docs[i]
        return (-length, date is None, date or "", source)

    def verdicts(self) -> dict[str, Verdict]:
        """Map each duplicate's id to its verdict; ids not in the map are kept."""
        clusters: dict[int, list[int]] = {}
        for i in range(len(self._docs)):
            clusters.setdefault(self._find(i), []).append(i)
        result: dict[str, Verdict] = {}
        self._reps: dict[int, int] = {}  # new doc -> idx (in the index) of the record its cluster keeps
        for root, members in clusters.items():
            anchor = self._anchor.get(root)
            if anchor is not None:
                kept = self.index.doc(anchor)
                kept_view = (kept.id, kept.source, kept.content_hash, kept.length, kept.date)
                kept_shingles = self.index.shingles(anchor)
                losers = members
            elif len(members) == 1:
                continue
            else:
                keep = min(members, key=self._rank)
                kept_view, kept_shingles = self._docs[keep], self._shingles(keep)
                losers = [m for m in members if m != keep]
            for m in losers:
                exact = self._docs[m][2] == kept_view[2]
                shingles = self._shingles(m)
                where, matched, how = self._link.get(m, ("new", m, ""))
                matched_id = self.index.doc(matched).id if where == "old" else self._docs[matched][0]
                result[self._docs[m][0]] = Verdict(
                    duplicate_of=kept_view[0],
                    kind="exact" if exact else "near",
                    similarity=1.0 if exact else round(jaccard(shingles, kept_shingles), 4),
                    containment=1.0 if exact else round(containment(shingles, kept_shingles), 4),
                    matched=matched_id,
                    reason=_why_lost(self._docs[m], kept_view, earlier=anchor is not None),
                    how=how or None,
                )
        return result

    def save(self, verdicts: dict[str, Verdict]) -> None:
        """Point this run's duplicates at the records their clusters keep, and save the run's files."""
        by_id = {d[0]: i for i, d in enumerate(self._docs)}
        reps = []
        for i, doc in enumerate(self._docs):
            verdict = verdicts.get(doc[0])
            if verdict is not None:
                anchor = self._anchor.get(self._find(i))
                reps.append(
                    (self.base + i, anchor if anchor is not None else self.base + by_id[verdict.duplicate_of])
                )
        self.index.set_reps(reps)
        self.index.save_run_files()

    def _shingles(self, i: int) -> np.ndarray:
        """The shingle set of this run's ``i``-th document."""
        return self.index.shingles(self.base + i)

    def _names(self, i: int) -> np.ndarray:
        """The name set of this run's ``i``-th document."""
        return self.index.names(self.base + i)

    def close(self) -> None:
        if self._owns_index:
            self.index.close()


def names_agree(a: np.ndarray, b: np.ndarray, config: MinHashConfig) -> bool:
    """Whether two texts' names and figures (sorted unique hashes) agree enough for the second check: at
    least ``min_names`` in the two together, at most ``names_tolerance`` of them (at least one) in one
    text only. A random word put in by a rewrite is a name now and then; the town, the figures and the
    day of another story written from the same template are most of its names."""
    from pipeline.signature_kernels import common  # noqa: PLC0415 - numba: 0.2 s to import

    shared = common(a, b)
    union = a.size + b.size - shared
    return union >= config.min_names and union - shared <= max(1, config.names_tolerance * union)


def _why_lost(doc: tuple, kept: tuple, earlier: bool) -> str:
    if earlier:
        return f"a copy of {kept[1]!r}, kept by an earlier run (kept records are never withdrawn)"
    _, source, _, length, date = doc
    _, kept_source, _, kept_length, kept_date = kept
    if length != kept_length:
        return f"shorter text ({length} < {kept_length} characters)"
    if date != kept_date:
        return f"later or missing date ({date} vs {kept_date})"
    return f"same length and date; kept source {kept_source!r} sorts first"
