from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.bands import BandTable, band_keys
from pipeline.signature import MinHashConfig, lsh_bands


def _brute_force(batches: list[np.ndarray], query: np.ndarray) -> list[list[int]]:
    owners: dict[int, set[int]] = {}
    idx = 0
    for keys in batches:
        for row in keys:
            for key in row.tolist():
                owners.setdefault(key, set()).add(idx)
            idx += 1
    return [sorted(set().union(*(owners.get(k, set()) for k in row.tolist()))) for row in query]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 12), min_size=1, max_size=12),  # batch sizes
    st.integers(0, 2**31),
)
def test_candidates_equal_a_brute_force_look_up(sizes: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    table = BandTable()
    batches = []
    first = 0
    for size in sizes:
        keys = rng.integers(0, 30, size=(size, 3), dtype=np.int64)  # few distinct keys: many shared
        table.add(keys, first)
        batches.append(keys)
        first += size
    query = rng.integers(0, 40, size=(5, 3), dtype=np.int64)
    assert table.candidates(query) == _brute_force(batches, query)


def test_segments_persist_merge_and_left_overs_are_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "bands"
    rng = np.random.default_rng(1)
    batches, names, first = [], [], 0
    for run, size in enumerate((50, 10, 10, 30)):
        table = BandTable(folder, names)
        keys = rng.integers(0, 200, size=(size, 4), dtype=np.int64)
        table.add(keys, first)
        names = table.save(f"run{run}")
        batches.append(keys)
        first += size
    assert len(names) < 4  # comparable segments were merged
    (folder / "dead.keys.npy").write_bytes(b"left by a run that died")
    table = BandTable(folder, names)
    assert not (folder / "dead.keys.npy").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{name}.{part}.npy" for name in names for part in ("keys", "idx")
    )
    query = np.concatenate(batches)[::7]
    assert table.candidates(query) == _brute_force(batches, query)


def test_band_keys_differ_per_band_and_follow_the_values() -> None:
    ranges = lsh_bands(MinHashConfig())
    signature = np.arange(128, dtype=np.uint32)
    same = np.tile(np.uint32(7), 128)
    keys = band_keys(np.stack([signature, signature, same]), ranges)
    assert keys.shape == (3, len(ranges)) and keys.dtype == np.int64 and (keys >= 0).all()
    assert (keys[0] == keys[1]).all()
    assert len(set(keys[2].tolist())) == len(ranges)  # equal band values, different bands: different keys
    changed = signature.copy()
    changed[ranges[1][0]] += 1
    differs = band_keys(changed, ranges)[0] != keys[0]
    assert differs.tolist() == [i == 1 for i in range(len(ranges))]
