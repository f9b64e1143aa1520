"""Cluster runs: the same clean on a Dask cluster (``pipeline clean --dask ADDRESS``).

What runs where:

- before the first pass each worker loads what its tasks use and gets glibc's adaptive malloc thresholds
  back (:func:`warm_up`);
- the two per-document passes (:func:`pipeline.run.load_chunk`, :func:`pipeline.run.clean_chunk`) are
  tasks over chunks of paths, as with the local worker processes; their spool files are written under
  OUTPUT, which every worker must see at the same path (one machine, or a shared file system);
- the boilerplate line counts are merged on the cluster, a tree of pairwise merges (:func:`merged_counts`);
  the client receives one count per source group;
- dedup's candidate pairs (:func:`pipeline.dedup.bucket_pairs`) are formed after a shuffle of the band and
  prefix keys by key (a Dask DataFrame), so each bucket is whole in one partition; the pairs, deduplicated
  by a second shuffle, are verified on the shingle sets where the workers spooled them, and only the
  verified pairs come back (:func:`cluster_edges`). The client joins them into clusters, applies the
  representative policy and writes the outputs and the index, as a local run does with its own pairs.

The pairs are the same as those a local run forms (the rule looks only at each bucket), and so are the
verdicts and the index: a cluster run equals ``pipeline clean --rebuild`` of the same folder, and later
runs continue from its index on one machine.
"""

from __future__ import annotations

import functools
import logging
import signal
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from pipeline.cleanup import LineCounts
from pipeline.dedup import BUCKET_HEAD, Edge, PairChecks, SignedBatch, bucket_pairs, verify_pairs
from pipeline.signature import MinHashConfig

LOCAL = "local"  # --dask local: a LocalCluster of worker processes on this machine
BAND, PREFIX = 0, 1  # the two kinds of bucket keys (never compared with each other)
CONNECT_TIMEOUT = "10s"  # for the scheduler to answer
KEYS_PER_PARTITION = 2_000_000  # rows of (key, document) a partition of the shuffle holds, about 40 MB
# Up to this many partitions the shuffle is Dask's task-based one (no set-up; its tasks grow with the
# square of the partitions); beyond, the peer-to-peer one, which is made for many partitions but costs
# about a second to start (2,000 documents: 1.06 s for the pairs with p2p, 0.23 s with tasks).
TASK_SHUFFLE_PARTITIONS = 16


@contextmanager
def cluster_client(address: str, workers: int) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``address`` (``tcp://host:8786``), or of a new
    ``LocalCluster`` of ``workers`` single-threaded processes for ``address == "local"``."""
    from distributed import Client  # noqa: PLC0415 - only cluster runs pay for the import

    if address == LOCAL:
        with local_cluster(workers) as lc, Client(lc) as client:
            client.run(_interrupts_to_the_parent)
            yield client
        return
    check_address(address)
    try:
        client = Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError) as err:
        raise _no_answer(address, err) from err
    with client:
        yield client


def local_cluster(workers: int, env: dict[str, str] | None = None) -> Any:
    """A ``LocalCluster`` of ``workers`` single-threaded processes on this machine (with ``env``), quiet:
    its scheduler and nannies live in this process and log every task cancelled and every worker started,
    and on Ctrl-C its workers log the scheduler they lost; the run's own progress, summary and errors say
    what a user needs (a task's exception still reaches the run)."""
    from distributed import LocalCluster  # noqa: PLC0415

    logging.getLogger("distributed").setLevel(logging.ERROR)
    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: the default 8787 warns when another cluster has it
        silence_logs=logging.CRITICAL,
        env=env or {},
    )


def _interrupts_to_the_parent() -> None:
    """In a local cluster's worker: ignore SIGINT. Ctrl-C reaches every process of the terminal's group;
    the run stops on it and closes the cluster, whose workers would otherwise each print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_address(address: str) -> None:
    """Raise UsageError for what is not a scheduler address, or for a TCP address that refuses connections
    (a client would retry until its time-out)."""
    from pipeline.run import UsageError  # noqa: PLC0415 - run imports this module

    if "://" not in address:
        raise UsageError(f"--dask takes a scheduler address (tcp://host:8786) or 'local', not {address!r}")
    url = urlsplit(address)
    if url.scheme == "tcp" and url.hostname and url.port:
        try:
            socket.create_connection((url.hostname, url.port), timeout=5).close()
        except OSError as err:
            raise _no_answer(address, err) from err


def _no_answer(address: str, err: Exception) -> Exception:
    from pipeline.run import UsageError  # noqa: PLC0415

    return UsageError(f"no Dask scheduler answers at {address} ({type(err).__name__}: {err})")


def warm_up(client: Any) -> None:
    """Load in every worker what its first task would otherwise load while the others wait for it: the
    extraction and cleaning modules, the compiled kernels, the language model, Dask DataFrame (about 2.4 s
    here, in every worker at once, and once for the life of a worker: a second run on the same cluster
    pays nothing); and glibc's adaptive malloc thresholds, which Dask's nannies fix (see below)."""
    client.run(_warm_worker)


# glibc's malloc thresholds for a worker (mallopt's M_TRIM_THRESHOLD and M_MMAP_THRESHOLD). Dask's nannies
# start their workers with MALLOC_TRIM_THRESHOLD_=65536, which also fixes the mmap threshold at 128 KB:
# every larger array (a language table's rows, a batch's shingle sets, a parsed page) is then mapped and
# unmapped anew, and every free over 64 KB at the heap's top is handed back. On the 20,000-file bench a
# LocalCluster of 2 took 21.7 s with them and 14.2 s without (worker load seconds 15.1 against 4.7). These
# are glibc's own ceilings for the thresholds it adapts by itself when nothing fixes them.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
TRIM_THRESHOLD = 64 * 1024 * 1024
MMAP_THRESHOLD = 32 * 1024 * 1024


def _malloc_defaults() -> None:
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None)
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass  # not glibc: its allocator has no such thresholds to undo


def _warm_worker() -> None:
    _malloc_defaults()
    import dask.dataframe  # noqa: F401, PLC0415
    import trafilatura  # noqa: F401, PLC0415

    from pipeline import run, signature_kernels  # noqa: F401, PLC0415 - run imports extraction and cleaning
    from pipeline.language import detector  # noqa: PLC0415

    signature_kernels.warm_up()
    detector()


class ClusterPool:
    """``map`` over a Dask cluster's workers, results in input order (the local pools' interface)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def map(self, fn: Callable[..., Any], *iterables: Iterable[Any]) -> Iterator[Any]:
        # pure=False: a retry after a lost worker runs the task again; its spool file is rewritten whole.
        futures = self.client.map(fn, *iterables, pure=False)
        try:
            for future in futures:
                yield future.result()
        finally:  # an interrupt or a failed task: what is still queued or running is dropped
            self.client.cancel([f for f in futures if not f.done()])


def merged_counts(client: Any, loaded: list[Any]) -> LineCounts:
    """The line counts of every loaded chunk, merged on the cluster two by two; only the total comes back."""
    from distributed import Future  # noqa: PLC0415

    level: list[Future] = client.map(_chunk_counts, loaded, pure=False)
    while len(level) > 1:
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        level = [
            client.submit(_merge_counts, *pair, pure=False) if len(pair) == 2 else pair[0] for pair in pairs
        ]
    return level[0].result() if level else LineCounts()


def _chunk_counts(chunk: Any) -> LineCounts:
    return chunk.counts


def _merge_counts(a: LineCounts, b: LineCounts) -> LineCounts:
    a.merge(b)
    return a


def cluster_edges(
    client: Any,
    spools: list[str],
    firsts: list[int],
    heads: np.ndarray,
    config: MinHashConfig,
) -> tuple[list[Edge], PairChecks]:
    """This run's verified pairs (run positions, sorted), computed on the cluster.

    Args:
        spools: each chunk's clean spool (its signatures are in ``SPOOL.signed``), in run order.
        firsts: the run position of each chunk's first record.
        heads: for every record of the run, whether it is the first copy of its text (only those enter
            the buckets, as in a local run).
    """
    import dask  # noqa: PLC0415
    import dask.dataframe as dd  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415

    # A shuffle's start and end are logged as warnings by the scheduler (in this process for a local one).
    logging.getLogger("distributed.shuffle").setLevel(logging.ERROR)
    bounds = [*firsts, int(heads.size)]
    masks = [heads[bounds[i] : bounds[i + 1]] for i in range(len(spools))]
    meta = pd.DataFrame(
        {"key": pd.Series(dtype="int64"), "doc": pd.Series(dtype="int64"), "kind": pd.Series(dtype="int8")}
    )
    keys = dd.from_map(_chunk_keys, spools, firsts, masks, meta=meta, enforce_metadata=False)
    rows = int(heads.sum()) * 20  # about one row per band and one per prefix
    partitions = max(1, min(len(spools), -(-rows // KEYS_PER_PARTITION)))
    pair_meta = pd.DataFrame({"a": pd.Series(dtype="int64"), "b": pd.Series(dtype="int64")})
    method = "tasks" if partitions <= TASK_SHUFFLE_PARTITIONS else "p2p"
    with dask.config.set({"dataframe.shuffle.method": method}):
        pairs = (
            keys.shuffle(on="key", npartitions=partitions)
            .map_partitions(_partition_pairs, meta=pair_meta)
            .drop_duplicates(split_out=partitions)
        )
        verified = [
            dask.delayed(_verify_partition)(part, spools, firsts, config) for part in pairs.to_delayed()
        ]
        results = client.gather(client.compute(verified))
    checks = PairChecks()
    edges: list[Edge] = []
    for part_edges, part_checks in results:
        edges.extend(part_edges)
        checks.merge(part_checks)
    edges.sort()
    return edges, checks


def _signed(spool: str) -> Iterator[SignedBatch]:
    from pipeline.run import read_batches  # noqa: PLC0415 - run imports this module

    for batch in read_batches(f"{spool}.signed"):
        yield from batch


def _chunk_keys(spool: str, first: int, heads: np.ndarray) -> Any:
    """The (key, document, kind) rows of a chunk's first copies: its band keys and its prefix."""
    import pandas as pd  # noqa: PLC0415

    keys, docs, kinds = [], [], []
    position = first
    for batch in _signed(spool):
        n = len(batch)
        mask = heads[position - first : position - first + n]
        idx = np.arange(position, position + n, dtype=np.int64)
        bands = batch.bands[mask]
        keys.append(bands.ravel())
        docs.append(np.repeat(idx[mask], bands.shape[1]))
        kinds.append(np.full(bands.size, BAND, np.int8))
        prefixed = [i for i in np.flatnonzero(mask).tolist() if batch.prefixes[i] is not None]
        keys.append(np.array([batch.prefixes[i] for i in prefixed], np.int64))
        docs.append(idx[prefixed])
        kinds.append(np.full(len(prefixed), PREFIX, np.int8))
        position += n
    if not keys:
        return pd.DataFrame(
            {"key": np.empty(0, np.int64), "doc": np.empty(0, np.int64), "kind": np.empty(0, np.int8)}
        )
    return pd.DataFrame(
        {"key": np.concatenate(keys), "doc": np.concatenate(docs), "kind": np.concatenate(kinds)}
    )


def _partition_pairs(rows: Any) -> Any:
    """The candidate pairs of the buckets in one partition (each bucket is whole in one partition)."""
    import pandas as pd  # noqa: PLC0415

    found = [
        bucket_pairs(
            rows["key"].to_numpy()[rows["kind"].to_numpy() == kind],
            rows["doc"].to_numpy()[rows["kind"].to_numpy() == kind],
            BUCKET_HEAD,
        )
        for kind in (BAND, PREFIX)
    ]
    pairs = np.concatenate(found)
    return pd.DataFrame({"a": pairs[:, 0], "b": pairs[:, 1]})


class _ChunkSets:
    """The shingle and name sets of the run's records, read from the chunks' spools as pairs need them."""

    def __init__(self, spools: list[str], firsts: list[int]) -> None:
        self.spools, self.firsts = spools, np.asarray(firsts)

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one instance per task, dropped with it
    def _chunk(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        batches = list(_signed(self.spools[c]))
        shingles = np.concatenate([b.shingles for b in batches]) if batches else np.empty(0, np.uint32)
        names = np.concatenate([b.names for b in batches]) if batches else np.empty(0, np.uint32)
        return (
            shingles,
            _offsets([b.offsets for b in batches]),
            names,
            _offsets([b.name_offsets for b in batches]),
        )

    def _where(self, doc: int) -> tuple[int, int]:
        c = int(np.searchsorted(self.firsts, doc, "right")) - 1
        return c, doc - int(self.firsts[c])

    def shingles(self, doc: int) -> np.ndarray:
        c, i = self._where(doc)
        data, offsets, _, _ = self._chunk(c)
        return data[offsets[i] : offsets[i + 1]]

    def names(self, doc: int) -> np.ndarray:
        c, i = self._where(doc)
        _, _, data, offsets = self._chunk(c)
        return data[offsets[i] : offsets[i + 1]]


def _offsets(parts: list[np.ndarray]) -> np.ndarray:
    """Per-batch offsets (each starting at 0) as offsets into the batches' concatenation."""
    result, base = [np.zeros(1, np.int64)], 0
    for offsets in parts:
        result.append(offsets[1:] + base)
        base += int(offsets[-1])
    return np.concatenate(result)


def _verify_partition(
    pairs: Any, spools: list[str], firsts: list[int], config: MinHashConfig
) -> tuple[list[Edge], PairChecks]:
    sets = _ChunkSets(spools, firsts)
    ordered = np.unique(pairs[["a", "b"]].to_numpy(np.int64).reshape(-1, 2), axis=0)
    checks = PairChecks()
    return verify_pairs(ordered, sets.shingles, sets.names, config, checks), checks
