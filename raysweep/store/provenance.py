"""Which code made a result: the package version, the git commit when run from a checkout, and a
hash of the source that decides a result (training, data, running a trial, the simulator).

A trial's id names what it computes (raysweep.sweep.identity), never the code computing it, so
editing a comment re-runs nothing; the record carries this fingerprint instead, and a command
that finds results of other code in its OUT says so (raysweep.run.resume). Two records are of
the same code when version and source hash agree; the commit is kept to trace a result back,
and is not compared (a commit that touches only the docs changes no result).

Left out: the versions of torch, timm and the other libraries (pip's lock file is the place for
those), and uncommitted edits outside the hashed files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import subprocess
from pathlib import Path

from raysweep import __version__

PACKAGE = Path(__file__).resolve().parents[1]   # raysweep/
# The source that decides a result, relative to the package: folders whole, or single files.
# The simulator evaluates its truths in the law language, so that language is its source too.
SOURCES = {
    "training": ("train",),
    "data": ("data",),
    "trial running": ("run/trial.py", "run/stages.py"),
    "simulation": ("sweep/simulate.py", "laws/form.py", "laws/derivatives.py"),
}


@dataclasses.dataclass(frozen=True)
class Fingerprint:
    version: str          # raysweep's package version
    source: str           # 16 hex digits of the sha256 of SOURCES' files
    commit: str | None    # git commit of the checkout it ran from; None for an installed wheel

    @property
    def key(self) -> tuple[str, str]:
        """What decides whether two records are of the same code."""
        return self.version, self.source

    def label(self) -> str:
        commit = f", commit {self.commit[:10]}" if self.commit else ""
        return f"raysweep {self.version}, source {self.source[:8] or '(not hashed)'}{commit}"


def source_files(package: Path = PACKAGE) -> list[Path]:
    """Every .py file of SOURCES under PACKAGE, sorted by path."""
    files: set[Path] = set()
    for entries in SOURCES.values():
        for entry in entries:
            path = package / entry
            files |= set(path.rglob("*.py")) if path.is_dir() else {path}
    return sorted(files)


def source_hash(package: Path = PACKAGE) -> str:
    """sha256 over each source file's path (relative to PACKAGE) and bytes."""
    digest = hashlib.sha256()
    for path in source_files(package):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def git_commit(package: Path = PACKAGE) -> str | None:
    """HEAD of the git checkout holding PACKAGE, or None (an installed wheel, no git)."""
    if not any((parent / ".git").exists() for parent in package.parents):
        return None
    try:
        done = subprocess.run(["git", "-C", str(package), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


@functools.cache
def current() -> Fingerprint:
    """This process's code; computed once (a trial's worker pays a few milliseconds)."""
    return Fingerprint(__version__, source_hash(), git_commit())


def of_row(row: dict) -> Fingerprint:
    """The fingerprint a result record carries (older records: version only)."""
    return Fingerprint(row.get("code_version") or "", row.get("code_source") or "",
                       row.get("code_commit"))
