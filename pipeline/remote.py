"""fsspec URLs as INPUT and OUTPUT (``s3://bucket/raw``, ``gs://...``, any protocol whose fsspec driver is
installed): a run reads files and writes a folder with an SQLite index, a lock and renames, none of which
an object store has, so both ends are staged in local folders under the cache (:func:`cache_root`).

- INPUT is mirrored: a file is downloaded only when its size or its version (ETag, else modification
  time) differs from the mirror's, and gets the store's modification time, so the run's incremental
  selection works as on a local folder; a file gone from the store leaves the mirror, so the index counts
  it as deleted. A record's ``source`` is its path under INPUT, as for a local folder.
- OUTPUT is a working copy: downloaded whole when the store's manifest (``.sync.json``) is not the one
  this machine last synced (another machine ran since, or the copy is new); after a run that ended well,
  every file whose size or modification time changed is uploaded, files the run removed are deleted from
  the store, and the manifest goes last. A run that fails uploads nothing.

Credentials and endpoints are the driver's own (``AWS_*`` variables, ``~/.aws``, ``FSSPEC_S3_ENDPOINT_URL``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, TypeVar

from pipeline.lock import DEFAULT_WAIT, LOCK_FILE, output_lock
from pipeline.run import RunConfig, UsageError, check_rules
from pipeline.run import check_request as check_local_request

log = logging.getLogger(__name__)

MANIFEST = ".sync.json"  # in OUTPUT on the store: what the last upload left there, written last
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
T = TypeVar("T")


def is_url(location: str | Path) -> bool:
    """Whether ``location`` is an fsspec URL (``proto://...``) rather than a local path."""
    return isinstance(location, str) and bool(_URL.match(location))


def cache_root() -> Path:
    """Where mirrors and working copies live: ``$SCRAPE_CLEAN_CACHE``, else ``$XDG_CACHE_HOME`` or
    ``~/.cache``, then ``scrape-clean`` (on a cluster, a folder every worker sees at the same path)."""
    if explicit := os.environ.get("SCRAPE_CLEAN_CACHE"):
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scrape-clean"


@contextmanager
def staged(
    input_location: str | Path,
    out_location: str | Path,
    wait: float = DEFAULT_WAIT,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[tuple[Path, Path]]:
    """Local paths for a run's INPUT and OUTPUT: a URL's mirror or working copy, a path as it is. OUTPUT's
    working copy is uploaded when the block ends without an exception.

    A mirror and a working copy are each held by one run of this machine at a time, from before their sync
    to the end of the block (another waits ``wait`` seconds, as for an output folder's lock): no run syncs
    a folder another is reading or writing.

    Raises:
        UsageError: a URL with no driver installed, INPUT missing on its store, OUTPUT equal to INPUT.
        OutputBusy: another run still holds the mirror or the working copy after ``wait``.
        OSError: the store could not be listed, read or written.
    """
    if is_url(input_location):
        input_location = str(input_location).rstrip("/")
    if is_url(out_location):
        out_location = str(out_location).rstrip("/")
    if is_url(input_location) and out_location == input_location:
        raise UsageError("the output folder must differ from the input folder")
    with ExitStack() as stack:
        source = Path(input_location)
        if is_url(input_location):
            url = str(input_location)
            stack.enter_context(_held(_folder_for("input", url), url, wait, on_wait))
            source = _mirrored(url)
        out = Path(out_location)
        if is_url(out_location):
            url = str(out_location)
            stack.enter_context(_held(_folder_for("output", url), url, wait, on_wait))
            out = stack.enter_context(_working_copy(url))
        yield source, out


def check_request(input_location: str | Path, out_location: str | Path, config: RunConfig) -> None:
    """:func:`pipeline.run.check_request` for local paths; with a URL at either end, what can be checked
    before a store is reached (the rule file): the rest is checked once the ends are staged.

    Raises:
        UsageError: see :func:`pipeline.run.check_request`.
    """
    if is_url(input_location) or is_url(out_location):
        check_rules(config)
    else:
        check_local_request(Path(input_location), Path(out_location), config)


def name_locations(stats: dict[str, Any], input_location: str | Path, out_location: str | Path) -> None:
    """A run's summary ``stats`` naming the URLs it was given, not the local folders it worked in."""
    for key, location in (("input", input_location), ("output", out_location)):
        if is_url(location):
            stats[key] = str(location)


def _held(folder: Path, url: str, wait: float, on_wait: Callable[[str], None] | None) -> Any:
    """The lock of a cache folder (``FOLDER.lock`` beside it), named for its URL in what a waiting run
    says."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    return output_lock(folder.parent, wait, on_wait, name=folder.name + ".lock", label=url)


def _store(url: str) -> tuple[Any, str]:
    """The file system of ``url`` and the path on it, or a one-line error for a protocol without driver."""
    import fsspec  # noqa: PLC0415 - only runs on URLs need it

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as err:  # "Install s3fs to access S3", "Protocol not known: xyz"
        raise UsageError(f"{url}: {err}") from None
    return fs, path.rstrip("/")


def _calling(url: str, action: Callable[[], T]) -> T:
    """``action()``, with a store's own failures (botocore's, aiohttp's) as an OSError naming ``url``."""
    try:
        return action()
    except OSError:
        raise
    except Exception as err:  # noqa: BLE001 - a driver's exception types are its own
        raise OSError(f"{url}: {type(err).__name__}: {err}") from err


def _folder_for(kind: str, url: str) -> Path:
    """A cache folder of its own for ``url``: a hash of it, and its tail for a reader of the cache."""
    tail = re.sub(r"[^a-z0-9._-]+", "-", url.rsplit("/", 1)[-1].lower())[:40] or "root"
    return cache_root() / kind / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{tail}"


def _version(info: dict[str, Any]) -> list[Any]:
    """What tells a stored file's versions apart: its size and its ETag, else its modification time."""
    tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified")
    return [info.get("size"), str(tag)]


def _modified(info: dict[str, Any]) -> float | None:
    when = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if isinstance(when, datetime):
        return when.timestamp()
    return float(when) if isinstance(when, int | float) else None


def _placeable(relatives: list[str]) -> tuple[list[str], list[str]]:
    """The keys below INPUT that can be paths below the mirror, and those that cannot: a key with a ``..``,
    ``.`` or empty part (``a//b``, which would land on another key's path, or outside the mirror), or one
    below a key that is a file itself (``a`` and ``a/b.txt``: the first keeps its path)."""
    files = set(relatives)
    good: list[str] = []
    bad: list[str] = []
    for relative in relatives:
        path = PurePosixPath(relative)
        normal = path.as_posix() == relative and all(p not in (".", "..") for p in path.parts)
        under_a_file = any(parent.as_posix() in files for parent in list(path.parents)[:-1])
        (good if normal and relative and not under_a_file else bad).append(relative)
    return good, bad


def _mirrored(url: str) -> Path:
    """INPUT's mirror, brought up to date (see the module's description); a file's URL gives its file."""
    fs, root = _store(url)
    if not _calling(url, lambda: fs.exists(root)):
        raise UsageError(f"input folder or file not found: {url}")
    mirror = _folder_for("input", url)
    single = _calling(url, lambda: fs.isfile(root))
    if single:
        name = PurePosixPath(root).name
        listing = {name: _calling(url, lambda: fs.info(root))}
        located = {name: root}
    else:
        found = _calling(url, lambda: fs.find(root, detail=True, withdirs=False))
        by_relative = {
            path[len(root) + 1 :]: (path, info)
            for path, info in found.items()
            if not (path.endswith("/") and not info.get("size"))  # a folder's marker object
        }
        good, bad = _placeable(sorted(by_relative))
        for relative in bad:
            log.warning("%s: key %r cannot be a file below a local folder: not read", url, relative)
        listing = {rel: by_relative[rel][1] for rel in good}
        located = {rel: by_relative[rel][0] for rel in good}
    manifest_path = mirror.with_name(mirror.name + ".json")
    known = (_read_json(manifest_path) or {}) if mirror.is_dir() else {}
    wanted = {rel: _version(info) for rel, info in listing.items()}
    for rel in set(known) - set(wanted):
        (mirror / rel).unlink(missing_ok=True)
    stale = [
        rel for rel, version in wanted.items() if known.get(rel) != version or not (mirror / rel).exists()
    ]
    if stale:
        incoming = mirror.with_name(mirror.name + ".incoming")
        shutil.rmtree(incoming, ignore_errors=True)
        temporary = [str(incoming / rel) for rel in stale]
        for path in temporary:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        _calling(url, lambda: fs.get([located[rel] for rel in stale], temporary))
        for rel, path in zip(stale, temporary, strict=True):
            target = mirror / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            if (when := _modified(listing[rel])) is not None:
                os.utime(target, (when, when))
        shutil.rmtree(incoming, ignore_errors=True)
    mirror.mkdir(parents=True, exist_ok=True)
    _write_json(manifest_path, wanted)
    return mirror / next(iter(listing)) if single else mirror


def _local_files(folder: Path) -> dict[str, list[int]]:
    """Every file below ``folder`` with its size and modification time (ns), by POSIX relative path; not
    the run's lock file, which is this machine's."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink() and path.name != LOCK_FILE:
            stat = path.stat()
            files[path.relative_to(folder).as_posix()] = [stat.st_size, stat.st_mtime_ns]
    return files


@contextmanager
def _working_copy(url: str) -> Iterator[Path]:
    """OUTPUT's working copy, current with the store, uploaded when the block ends well."""
    fs, root = _store(url)
    copy = _folder_for("output", url)
    synced_path = copy.with_name(copy.name + ".json")
    synced = _read_json(synced_path) if copy.is_dir() else None
    manifest_url = f"{root}/{MANIFEST}"
    stored = _stored_manifest(fs, url, manifest_url)
    if stored is None and _calling(url, lambda: fs.exists(root) and bool(fs.ls(root))):
        raise UsageError(
            f"{url} holds files but no {MANIFEST}: not an output of this tool (or its first upload was "
            "cut short); give an empty or new location"
        )
    if stored is None or synced is None or stored.get("run") != synced.get("run"):
        synced_path.unlink(missing_ok=True)  # until the copy is whole again
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir(parents=True)
        if stored is not None:  # written by us: fetch everything it lists (a store without one is new)
            files = sorted(stored["files"])
            _calling(
                url, lambda: fs.get([f"{root}/{rel}" for rel in files], [str(copy / rel) for rel in files])
            )
        synced = {"run": stored["run"] if stored else None, "files": _local_files(copy)}
        _write_json(synced_path, synced)
    yield copy
    now = _local_files(copy)
    changed = sorted(rel for rel, state in now.items() if synced["files"].get(rel) != state)
    gone = sorted(set(synced["files"]) - set(now))
    if not changed and not gone:
        return
    now_stored = _stored_manifest(fs, url, manifest_url) or {}
    if now_stored.get("run") != synced["run"]:
        raise OSError(
            f"{url}: another run wrote this output while this one ran: this run's result is not "
            "uploaded; run again to clean the new inputs onto the other run's output"
        )
    if changed:
        _calling(
            url, lambda: fs.put([str(copy / rel) for rel in changed], [f"{root}/{rel}" for rel in changed])
        )
    if gone:
        _calling(url, lambda: fs.rm([f"{root}/{rel}" for rel in gone]))
    run_id = uuid.uuid4().hex
    manifest = {"run": run_id, "files": {rel: state[0] for rel, state in now.items()}}
    _calling(url, lambda: fs.pipe_file(manifest_url, json.dumps(manifest, indent=1).encode()))
    _write_json(synced_path, {"run": run_id, "files": now})


def _stored_manifest(fs: Any, url: str, manifest_url: str) -> dict[str, Any] | None:
    """The store's manifest, None if there is none.

    Raises:
        OSError: one that is not JSON of ours (its writer is not this tool, or it was damaged).
    """
    if not _calling(url, lambda: fs.exists(manifest_url)):
        return None
    try:
        manifest = json.loads(_calling(url, lambda: fs.cat_file(manifest_url)))
        if isinstance(manifest, dict) and isinstance(manifest.get("files"), dict):
            return manifest
    except ValueError:
        pass
    raise OSError(f"{url}/{MANIFEST} is damaged or not this tool's: the output cannot be synced")


def _read_json(path: Path) -> Any:
    """A cache file's JSON, None if it is missing or damaged (the folder it describes is then synced
    again)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value), encoding="utf-8")
    os.replace(temporary, path)
