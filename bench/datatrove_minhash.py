"""datatrove's four-stage MinHash dedup on the bench corpus (run by bench/run.py in bench/.venv-peers).

    python bench/datatrove_minhash.py prepare CORPUS_DIR WORK_DIR   # txt files -> 2 JSONL shards (not timed)
    python bench/datatrove_minhash.py run WORK_DIR                  # signatures, buckets, clusters, filter

The configuration mirrors ours as far as datatrove allows: word 5-grams, 14 buckets of 8 hashes (datatrove's
default LSH shape for about 0.75), 2 tasks on 2 workers, English word tokenizer (spaCy, datatrove's default),
for every language of the real-text corpus (mostly German and English, all in Latin or Cyrillic script, so
its words split on spaces as ours do).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TASKS = 2


def prepare(corpus: Path, work: Path) -> None:
    shards = work / "input"
    shards.mkdir(parents=True, exist_ok=True)
    files = sorted(corpus.rglob("*.txt"))
    handles = [open(shards / f"part-{i}.jsonl", "w", encoding="utf-8") for i in range(TASKS)]
    for n, path in enumerate(files):
        row = {"id": path.relative_to(corpus).as_posix(), "text": path.read_text(encoding="utf-8")}
        handles[n % TASKS].write(json.dumps(row) + "\n")
    for handle in handles:
        handle.close()


def run(work: Path) -> None:
    from datatrove.executor.local import LocalPipelineExecutor
    from datatrove.pipeline.dedup import MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers.jsonl import JsonlWriter

    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
    base, logs = work / "minhash", work / "logs"

    def reader() -> JsonlReader:
        return JsonlReader(str(work / "input"))

    stage1 = LocalPipelineExecutor(
        pipeline=[reader(), MinhashDedupSignature(output_folder=str(base / "signatures"), config=config)],
        tasks=TASKS,
        workers=TASKS,
        logging_dir=str(logs / "signatures"),
    )
    stage2 = LocalPipelineExecutor(
        pipeline=[
            MinhashDedupBuckets(
                input_folder=str(base / "signatures"), output_folder=str(base / "buckets"), config=config
            )
        ],
        tasks=config.num_buckets,
        workers=TASKS,
        logging_dir=str(logs / "buckets"),
        depends=stage1,
    )
    stage3 = LocalPipelineExecutor(
        pipeline=[
            MinhashDedupCluster(
                input_folder=str(base / "buckets"), output_folder=str(base / "remove_ids"), config=config
            )
        ],
        tasks=1,
        logging_dir=str(logs / "clusters"),
        depends=stage2,
    )
    stage4 = LocalPipelineExecutor(
        pipeline=[
            reader(),
            MinhashDedupFilter(input_folder=str(base / "remove_ids")),
            JsonlWriter(str(work / "output")),
        ],
        tasks=TASKS,
        workers=TASKS,
        logging_dir=str(logs / "filter"),
        depends=stage3,
    )
    stage4.run()


if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        run(Path(sys.argv[2]))
