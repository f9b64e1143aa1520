"""The options of a clean run, declared once: ``pipeline clean``, ``python -m flows.clean_folder``, the
flows' ``options`` parameter and ``pipeline serve``'s deployments all take :class:`CleanOptions`.

Each field carries its command-line flag and help; :func:`add_arguments` turns the fields into argparse
arguments and :func:`from_arguments` turns the parsed arguments back into options, so a new option is one
field here and reaches every entry point (``tests/test_options.py`` checks that they agree, and that
README's usage lines list every flag).
"""

from __future__ import annotations

import argparse
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from pipeline.cleanup import CleanupConfig
from pipeline.language import LanguageConfig, parse_languages
from pipeline.lock import DEFAULT_WAIT
from pipeline.progress import PROGRESS_INTERVAL
from pipeline.run import OUTPUT_FORMATS, SCAN_MODES, RunConfig
from pipeline.signature import MinHashConfig


def _option(default: Any, help: str, flag: str = "", short: str = "", **argparse_kwargs: Any) -> Any:
    """A field with its command-line form: ``flag`` (default ``--field-name``), a ``short`` one, ``help``
    and what else ``ArgumentParser.add_argument`` takes (``action``, ``choices``, ``metavar``)."""
    metadata = {"help": help, "flag": flag, "short": short, "argparse": argparse_kwargs}
    return field(default=default, metadata=metadata)


_MINHASH, _RUN, _CLEANUP = MinHashConfig(), RunConfig(), CleanupConfig()


@dataclass(frozen=True)
class CleanOptions:
    """Everything a user may set for a clean run besides its INPUT and OUTPUT (see ``pipeline clean
    --help``; README, "Command line")."""

    threshold: float = _option(_MINHASH.threshold, "Jaccard similarity for near duplicates")
    containment: float = _option(
        _MINHASH.containment, "share of a shorter copy found in the longer one to call it a copy cut short"
    )
    rewrite_threshold: float = _option(
        _MINHASH.rewrite_threshold,
        "Jaccard from which a pair below --threshold is a near duplicate when the two texts' names and "
        "figures agree (a light rewrite; >= --threshold: off)",
    )
    shingle_size: int = _option(_MINHASH.shingle_size, "words per shingle")
    num_perm: int = _option(_MINHASH.num_perm, "MinHash permutations")
    workers: int = _option(
        _RUN.workers,
        "worker processes (0 = all cores); in a flow, chunk tasks at once (0 = the task runner's)",
        short="-w",
        metavar="N",
    )
    chunk_size: int = _option(_RUN.chunk_size, "files per worker task", metavar="N")
    boilerplate: str | None = _option(
        None, "boilerplate rule file replacing the shipped pipeline/boilerplate.txt", metavar="FILE"
    )
    min_words: int = _option(
        _CLEANUP.min_words,
        "reject as too_short a clean text of fewer words than this with no sentence in it (a menu, one "
        "word); 0 keeps every text",
        metavar="N",
    )
    languages: tuple[str, ...] = _option(
        (),
        "keep only records in these languages, comma-separated ISO 639-1 codes as the detector (py3langid) "
        "gives them: de,en,fr; the others are rejected as language (default: every language)",
        metavar="CODES",
    )
    rebuild: bool = _option(
        False, "forget the index and the outputs in OUTPUT and clean every input again", action="store_true"
    )
    scan: str = _option(
        _RUN.scan,
        "full: stat every input file; folders: look only into folders whose modification time changed "
        "since the last run (new, renamed and deleted files change it; a file rewritten in place does "
        "not), so a run's cost follows the new files, not the corpus",
        choices=SCAN_MODES,
    )
    follow_symlinks: bool = _option(
        False,
        "read what symbolic links in INPUT point to even outside INPUT, and walk linked folders outside it "
        "(default: a link resolving outside INPUT is rejected as outside_input, unread)",
        action="store_true",
    )
    output_format: str = _option(
        _RUN.output_format,
        "jsonl: records.jsonl, duplicates.jsonl, rejected.jsonl; parquet: records.parquet, "
        "duplicates.parquet, rejected.parquet (same fields and types), the JSON lines kept inside "
        "OUTPUT/index.data as the index's journal; both: the two. A later run may switch it",
        flag="--format",
        choices=OUTPUT_FORMATS,
    )
    report: bool = _option(
        True,
        "skip report.json/report.html (they cover all runs, so they cost time with the history; "
        "`pipeline report OUTPUT --open` builds them later)",
        flag="--no-report",
        action="store_false",
    )
    wait: float = _option(
        DEFAULT_WAIT,
        "if another run is writing to OUTPUT, wait this long for it to finish, then give up with exit "
        "status 75",
        metavar="SECONDS",
    )
    dask: str | None = _option(
        None,
        "run on the Dask cluster of this scheduler (tcp://host:8786), or on a new cluster of --workers "
        "processes on this machine (local); INPUT and OUTPUT must be at the same paths on every worker. "
        "The result is the same as without",
        metavar="ADDRESS",
    )
    progress_every: float = _option(
        PROGRESS_INTERVAL,
        "off a terminal (and in a flow's log), a progress line this often; a terminal gets a bar",
        metavar="SECONDS",
    )
    quiet: bool = _option(False, "no progress and no summary", short="-q", action="store_true")

    def __post_init__(self) -> None:
        # A flow's parameters arrive as JSON: a list for the tuple, and a string of codes is taken too.
        languages = self.languages
        if isinstance(languages, str):
            languages = parse_languages(languages)
        object.__setattr__(self, "languages", parse_languages(",".join(languages)))
        if self.progress_every <= 0:
            raise ValueError("--progress-every must be more than 0 seconds")

    def run_config(self) -> RunConfig:
        """The run's settings (raises ``ValueError`` for a value out of range)."""
        return RunConfig(
            cleanup=CleanupConfig(
                boilerplate_file=Path(self.boilerplate) if self.boilerplate else None,
                min_words=self.min_words,
            ),
            minhash=MinHashConfig(
                threshold=self.threshold,
                containment=self.containment,
                rewrite_threshold=self.rewrite_threshold,
                shingle_size=self.shingle_size,
                num_perm=self.num_perm,
            ),
            language=LanguageConfig(keep=self.languages),
            workers=self.workers,
            chunk_size=self.chunk_size,
            report=self.report,
            scan=self.scan,
            follow_symlinks=self.follow_symlinks,
            wait=self.wait,
            output_format=self.output_format,
        )


def flags(option: Field[Any]) -> list[str]:
    """The command-line flags of an option (a field of :class:`CleanOptions`): long, then short."""
    meta = option.metadata
    return [meta["flag"] or "--" + option.name.replace("_", "-"), *filter(None, [meta["short"]])]


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    defaults: CleanOptions | None = None,
    *,
    given_only: bool = False,
) -> None:
    """One argument per option, with ``defaults`` (CleanOptions() unless given) as the defaults.

    ``given_only``: an option left off the command line is absent from the parsed arguments (the help
    still shows its default), for a caller that passes on only what was asked for (:func:`given`).
    """
    defaults = defaults or CleanOptions()
    for f in fields(CleanOptions):
        meta, default = f.metadata, getattr(defaults, f.name)
        kwargs = dict(meta["argparse"])
        help_text = meta["help"]
        if kwargs.get("action") is None:
            # a value's type is its default's: a string for those that default to None, and for the
            # languages, whose codes come as one string (de,en) and are checked in __post_init__
            kwargs.setdefault("type", str if default is None or isinstance(default, tuple) else type(default))
            if default not in (None, ()):
                help_text += (
                    f" (default: {default:g})" if isinstance(default, float) else f" (default: {default})"
                )
        elif kwargs["action"] == "store_true":
            default = bool(default)
        if given_only:
            default = argparse.SUPPRESS
        parser.add_argument(*flags(f), dest=f.name, default=default, help=help_text, **kwargs)


def from_arguments(args: argparse.Namespace) -> CleanOptions:
    """The options of parsed arguments (those of :func:`add_arguments`)."""
    return CleanOptions(**{f.name: getattr(args, f.name) for f in fields(CleanOptions)})


def given(args: argparse.Namespace) -> dict[str, Any]:
    """The options given on a command line parsed with ``add_arguments(..., given_only=True)``, checked,
    as a flow's ``options`` parameter (see :func:`as_parameter`).

    Raises:
        ValueError: a value out of range (see :meth:`CleanOptions.run_config`).
    """
    names = [f.name for f in fields(CleanOptions) if hasattr(args, f.name)]
    options = CleanOptions(**{name: getattr(args, name) for name in names})
    options.run_config()
    return as_parameter(options, names)


def as_parameter(options: CleanOptions, names: list[str] | None = None) -> dict[str, Any]:
    """The options (those in ``names``, else all) as JSON values for a flow's ``options`` parameter: the
    language codes as a list."""
    chosen = names if names is not None else [f.name for f in fields(CleanOptions)]
    values = {name: getattr(options, name) for name in chosen}
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}
