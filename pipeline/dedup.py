"""Exact and near-duplicate detection: content hash, MinHash LSH candidates, measured verification,
union-find clusters and a deterministic choice of the record each cluster keeps.

Documents are added one at a time in a fixed order (sorted input paths), so the result does not depend on
the number of workers. Memory holds per document only a few scalars and the LSH band keys; the shingle
sets used to measure similarity live in append-only files next to the index
(:class:`~pipeline.index.SetFiles`).

Candidates come from buckets: documents sharing a key, of two kinds:

- MinHashLSH band keys, with bands tuned for ``threshold - 0.2`` (``signature.LSH_MARGIN``): datasketch's
  bands for 0.8 itself find only 40% of pairs at Jaccard 0.8 and 69% at 0.85; for 0.6 they find 98.6% and
  99.9%, and every candidate is verified exactly anyway, so the extra candidates cost a few set
  intersections;
- the first ``PREFIX_TOKENS`` words of the dedup key: a copy cut short ("Continue reading") starts like
  the full article but its Jaccard with it is low, so LSH alone would miss it.

Only the first copy of each exact text (its content hash) enters the buckets; its later copies are settled
by the hash. The candidate pairs of a run are those of :func:`bucket_pairs`: in each bucket, in document
order, each document with the bucket's earliest ``BUCKET_HEAD`` documents before it. The rule looks at
nothing but the buckets, so it gives the same pairs whether one process forms them or a cluster shuffles
the keys (:mod:`pipeline.cluster`), and a bucket of thousands (one template, one notice repeated with a
counter) costs ``BUCKET_HEAD`` pairs per document, not a comparison with every earlier copy.

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
# Earlier documents of a bucket each document is verified against (see bucket_pairs): a document that
# resembles a cluster resembles its first members as well as its later ones.
BUCKET_HEAD = 8
MAX_PREFIX_BUCKET = 64  # earlier runs' documents of a prefix looked up; beyond, a prefix is a template
OLD_MEMBERS_CHECKED = 3  # members of an earlier cluster verified besides its kept record


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


@dataclass(slots=True)
class PairChecks:
    """What the verification of candidate pairs did (the run's stats, "dedup")."""

    checked: int = 0
    verified: int = 0
    rewrite: int = 0  # pairs verified by the second check (names and figures agree)
    refused: int = 0  # pairs in [rewrite_threshold, threshold) whose names and figures differ

    def count(self, how: str | None) -> None:
        self.checked += 1
        self.verified += how in VERIFIED
        self.rewrite += how == "rewrite"
        self.refused += how == REFUSED

    def merge(self, other: PairChecks) -> None:
        self.checked += other.checked
        self.verified += other.verified
        self.rewrite += other.rewrite
        self.refused += other.refused


VERIFIED = ("jaccard", "containment", "rewrite")
REFUSED = "refused"  # the second check ran and found the names and figures different

Edge = tuple[int, int, str, float]  # (earlier document, later document, how, Jaccard): a verified pair


def verify(
    ours: np.ndarray,
    theirs: np.ndarray,
    our_names: Callable[[], np.ndarray],
    their_names: Callable[[], np.ndarray],
    config: MinHashConfig,
) -> tuple[str | None, float]:
    """How two documents with shingle sets ``ours`` and ``theirs`` are near duplicates (one of
    ``VERIFIED``), ``REFUSED`` or None when they are not, and their Jaccard. Their name sets are read only
    for the second check."""
    score = jaccard(ours, theirs)
    if score >= config.threshold:
        return "jaccard", score
    if (
        min(ours.size, theirs.size) >= config.min_containment_shingles
        and containment(ours, theirs) >= config.containment
    ):
        return "containment", score
    if score >= config.rewrite_threshold:
        return ("rewrite" if names_agree(our_names(), their_names(), config) else REFUSED), score
    return None, score


def bucket_pairs(keys: np.ndarray, docs: np.ndarray, head: int = BUCKET_HEAD) -> np.ndarray:
    """The candidate pairs of (key, document) rows: in each bucket (the documents sharing a key), in
    document order, each document with the bucket's earliest ``head`` documents before it.

    Returns:
        ``(n, 2)`` int64, unique (earlier, later) pairs sorted.

    Example:
        keys ``[7, 7, 7]``, documents ``[2, 0, 1]``, head 1: ``[[0, 1], [0, 2]]``.
    """
    if keys.size == 0:
        return np.empty((0, 2), np.int64)
    order = np.lexsort((docs, keys))
    keys, docs = keys[order], docs[order]
    distinct = np.ones(keys.size, bool)
    distinct[1:] = (keys[1:] != keys[:-1]) | (docs[1:] != docs[:-1])
    keys, docs = keys[distinct], docs[distinct]
    opens = np.ones(keys.size, bool)
    opens[1:] = keys[1:] != keys[:-1]
    group_start = np.flatnonzero(opens)[np.cumsum(opens) - 1]
    counts = np.minimum(np.arange(keys.size) - group_start, head)
    later = np.repeat(np.arange(keys.size), counts)
    step = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    earlier = np.repeat(group_start, counts) + step
    return np.unique(np.stack((docs[earlier], docs[later]), axis=1).astype(np.int64), axis=0)


def verify_pairs(
    pairs: np.ndarray,
    shingles_of: Callable[[int], np.ndarray],
    names_of: Callable[[int], np.ndarray],
    config: MinHashConfig,
    checks: PairChecks,
) -> list[Edge]:
    """The verified ones of sorted candidate ``pairs`` (see :func:`verify`), counted into ``checks``."""
    edges: list[Edge] = []
    last, ours = -1, _NONE
    for a, b in pairs.tolist():
        if a != last:  # pairs come sorted: one read of each earlier document's set
            last, ours = a, shingles_of(a)
        how, score = verify(ours, shingles_of(b), partial(names_of, a), partial(names_of, b), config)
        checks.count(how)
        if how in VERIFIED:
            edges.append((a, b, how, score))
    return edges


class Deduplicator:
    """Streams signed documents in, and says at the end which are kept and which duplicate what.

    Adding a document settles what needs no other document of this run: an exact copy of an earlier text
    (by its hash), and, with an :class:`~pipeline.index.Index` of earlier runs, the earlier cluster it
    belongs to. The run's own near duplicates are joined at the end (:meth:`verdicts`), from the verified
    pairs of :func:`bucket_pairs` over this run's keys, found here or by a cluster (the same pairs).

    Earlier runs' clusters are settled: a new copy of an article kept earlier becomes a duplicate of that
    kept record, even when it would rank first, because a record already handed out is never withdrawn
    (ids stay stable for whoever consumed the earlier output). For the same reason two clusters kept apart
    earlier are not merged when a new document resembles both: it joins the one it is most similar to.
    """

    def __init__(self, config: MinHashConfig, index: Index | None = None) -> None:
        self.config = config
        self._owns_index = index is None
        self.index: Index = index if index is not None else Index(None, config.fingerprint())
        self.base: int = self.index.next_idx  # documents of this run get idx base, base + 1, ...
        self._exact: dict[str, int] = {}
        self._first_copy: dict[int, int] = {}  # first copy of a text -> its next exact copy
        self._prefix_keys: list[int] = []  # prefix buckets of this run's first copies ...
        self._prefix_docs: list[int] = []  # ... and their documents
        self._parent: list[int] = []
        self._anchor: dict[int, int] = {}  # cluster root -> idx of the record an earlier run kept
        self._docs: list[tuple[str, str, str, int, str | None]] = []  # id, source, hash, length, date
        self._prefixes: list[int | None] = []
        # doc -> (what it was linked to, how): ("new", i) or ("old", idx) and "exact"/"jaccard"/"containment"
        # /"rewrite"
        self._link: dict[int, tuple[str, int, str]] = {}
        self.checks = PairChecks()
        self.bridges_refused = 0

    def __len__(self) -> int:
        return len(self._docs)

    def add(self, doc: Signed) -> None:
        """Add one document."""
        self.add_chunk(SignedBatch.of([doc]))

    def add_chunk(self, batch: SignedBatch) -> None:
        """Add documents in order. Their look-ups among earlier runs' documents run as one batch (see
        :class:`~pipeline.bands.BandTable`)."""
        if not len(batch):
            return
        first = len(self._docs)
        self.index.shingle_files.extend(batch.shingles, np.diff(batch.offsets).tolist())
        self.index.name_files.extend(batch.names, np.diff(batch.name_offsets).tolist())
        # A copy of a text this run has seen is settled by its hash: its band keys would add nothing.
        fresh = np.ones(len(batch), dtype=bool)
        in_batch: set[str] = set()
        for pos, content_hash in enumerate(batch.content_hashes):
            if content_hash in self._exact or content_hash in in_batch:
                fresh[pos] = False
            in_batch.add(content_hash)
        has_old = self.base > 0
        if has_old:
            found = iter(self.index.bands.candidates(batch.bands[fresh], stored_only=True))
        self.index.bands.add(batch.bands, self.base + first, fresh)
        for pos, doc in enumerate(batch.documents()):
            old_candidates = set(next(found)) if has_old and fresh[pos] else set()
            self._add(first + pos, doc, old_candidates, has_old)
        # Rows now, while the workers clean the next chunks; a duplicate's rep is set by ``save``.
        self.index.add_documents(
            (self.base + i, *self._docs[i], self.base + i, self._prefixes[i])
            for i in range(first, len(self._docs))
        )

    def _add(self, index: int, doc: Signed, old_candidates: set[int], has_old: bool) -> None:
        self._docs.append((doc.id, doc.source, doc.content_hash, doc.length, doc.date))
        self._parent.append(index)
        self._prefixes.append(doc.prefix)
        first = self._exact.get(doc.content_hash)
        if first is not None:
            if self._union(first, index):
                self._link[index] = ("new", first, "exact")
                self._first_copy.setdefault(first, index)
            return
        self._exact[doc.content_hash] = index
        if doc.prefix is not None:
            self._prefix_keys.append(doc.prefix)
            self._prefix_docs.append(index)
        if not has_old:
            return
        old = self.index.exact(doc.content_hash)
        if old is not None:
            self._anchor_to(index, old, "exact")
            return
        if doc.prefix is not None:
            old_candidates.update(self.index.prefix_candidates(doc.prefix, MAX_PREFIX_BUCKET))
        if old_candidates:
            best_old = self._best_old_match(doc, old_candidates)
            if best_old is not None:
                self._anchor_to(index, best_old[1], best_old[2])

    def heads(self) -> np.ndarray:
        """Whether each document of this run is the first copy of its text (those enter the buckets)."""
        heads = np.zeros(len(self._docs), bool)
        heads[list(self._exact.values())] = True
        return heads

    def candidate_pairs(self) -> np.ndarray:
        """This run's candidate pairs (run positions, see :func:`bucket_pairs`): band buckets and prefix
        buckets of the first copies, each kind apart."""
        keys, idxs = self.index.bands.fresh_rows()
        bands = bucket_pairs(keys, idxs - self.base)
        prefixes = bucket_pairs(np.array(self._prefix_keys, np.int64), np.array(self._prefix_docs, np.int64))
        return np.unique(np.concatenate((bands, prefixes)), axis=0)

    def verified_pairs(self, pairs: np.ndarray) -> list[Edge]:
        return verify_pairs(pairs, self._shingles, self._names, self.config, self.checks)

    def _join(self, edges: Iterable[Edge]) -> None:
        """Join this run's clusters along verified pairs (sorted), and link each document to the one it
        was verified against: its best earlier match (highest Jaccard, then the earliest), else the first
        later document verified against it or copying it."""
        best: dict[int, tuple[float, int, str]] = {}
        first_later: dict[int, tuple[int, str]] = {i: (c, "exact") for i, c in self._first_copy.items()}
        for a, b, how, score in edges:
            if not self._union(a, b):
                continue
            if b not in best or score > best[b][0]:
                best[b] = (score, a, how)
            if a not in first_later or b < first_later[a][0]:
                first_later[a] = (b, how)
        for i in range(len(self._docs)):
            if i in self._link:
                continue
            if i in best:
                self._link[i] = ("new", best[i][1], best[i][2])
            elif i in first_later:
                self._link[i] = ("new", *first_later[i])

    def _best_old_match(self, doc: Signed, candidates: set[int]) -> tuple[float, int, str] | None:
        """The best verified match among earlier documents, checking each earlier cluster through its kept
        record first and at most ``OLD_MEMBERS_CHECKED`` other members: a run's cost then grows with the
        clusters its documents touch, not with how many copies those clusters hold."""
        best: tuple[float, int, str] | None = None
        for rep, members in sorted(self.index.reps(candidates).items()):
            for other in [rep] + [m for m in members if m != rep][:OLD_MEMBERS_CHECKED]:
                how, score = verify(
                    doc.shingles,
                    self.index.shingles(other),
                    lambda: doc.names,
                    partial(self.index.names, other),
                    self.config,
                )
                self.checks.count(how)
                if how in VERIFIED:
                    if best is None or score > best[0]:
                        best = (score, other, how)
                    break
        return best

    def _anchor_to(self, index: int, old_idx: int, how: str) -> None:
        rep = self.index.doc(old_idx).rep
        root = self._find(index)
        if self._anchor.get(root, rep) != rep:
            self.bridges_refused += 1
            return
        self._anchor[root] = rep
        self._link[index] = ("old", old_idx, how)

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

    def verdicts(self, edges: Iterable[Edge] | None = None) -> dict[str, Verdict]:
        """Join this run's near duplicates and map each duplicate's id to its verdict; ids not in the map
        are kept. ``edges``: this run's verified pairs (run positions, sorted), when a cluster found and
        verified them; by default they are found and verified here."""
        self._join(self.verified_pairs(self.candidate_pairs()) if edges is None else edges)
        clusters: dict[int, list[int]] = {}
        for i in range(len(self._docs)):
            clusters.setdefault(self._find(i), []).append(i)
        result: dict[str, Verdict] = {}
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
