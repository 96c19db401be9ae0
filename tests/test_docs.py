"""Documents cite only what the repository holds.

Every relative link and every repository path written in backticks in a tracked Markdown file (one
under a top-level folder or file of the repository, or a bare module or document name) must name a
tracked file or folder, a `tests/x.py::name` reference also a function or class of that file; and no
tracked file may cite the working notes that are not shipped with the repository.
"""

from __future__ import annotations

import re
import subprocess
from fnmatch import fnmatch
from functools import cache
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Working notes kept outside the repository: never shipped, so never to be cited. Spelled in pieces
# so this file does not match itself.
_NOTES = ("gateway-protocol", "litellm-notes", "dify-plugin-sdk", "peers", "style")
UNSHIPPED = re.compile(r"\b(?:" + "|".join(re.escape(n) for n in _NOTES) + r")\.md\b|shared/" + "docs")

_LINK = re.compile(r"\]\(([^)\s]+)\)")
_CODE = re.compile(r"`([^`\n]+)`")
# A bare module or document name (`loader.py`, `PRIVACY.md`) must be some tracked file's name; other
# bare names (`sources.json` of the recorded answers beside the checkout) describe data, not sources.
_BARE_SUFFIXES = frozenset({".py", ".md"})


@cache
def tracked() -> tuple[str, ...]:
    try:
        listing = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc}); the tracked files cannot be listed")
    return tuple(line for line in listing.splitlines() if (ROOT / line).exists())


@cache
def tracked_folders() -> frozenset[str]:
    return frozenset(str(parent) for f in tracked() for parent in PurePosixPath(f).parents if str(parent) != ".")


def exists(path: str) -> bool:
    path = path.rstrip("/")
    if "*" in path:
        return any(fnmatch(f, path) for f in tracked())
    return path in tracked() or path in tracked_folders()


def markdown_files() -> list[str]:
    return [f for f in tracked() if f.endswith(".md")]


def cited_paths(document: str, text: str) -> list[str]:
    """Repository paths a document names: relative link targets (resolved) and backticked paths."""
    base = PurePosixPath(document).parent
    found = []
    for target in _LINK.findall(text):
        target = target.split("#", 1)[0]
        if target and not re.match(r"[a-z][a-z0-9+.-]*:", target):
            found.append(_normalised(base / target))
    top = {PurePosixPath(f).parts[0] for f in tracked()}
    for span in _CODE.findall(text):
        path = span.split("::", 1)[0]
        if re.search(r"[\s<>{}()=:,]", path) or path.startswith(("/", "-", "*", ".")) or "//" in path:
            continue  # a URL path, a command, a placeholder, a suffix: not a file of this repository
        suffix = PurePosixPath(path).suffix
        if ("/" in path and PurePosixPath(path).parts[0] in top) or ("/" not in path and suffix in _BARE_SUFFIXES):
            found.append(span)
    return found


def _normalised(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            parts = parts[:-1] if parts else [".."]
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


def missing_citations(document: str, text: str) -> list[str]:
    basenames = {PurePosixPath(f).name for f in tracked()}
    missing = []
    for cited in cited_paths(document, text):
        path, _, name = cited.partition("::")
        present = exists(path) if "/" in path else path in basenames  # a bare name: some tracked file's
        if not present or (name and not _defines(path, name)):
            missing.append(cited)
    return missing


def _defines(path: str, name: str) -> bool:
    return bool(re.search(rf"^\s*(?:async\s+)?(?:def|class)\s+{re.escape(name)}\b", _read(path), re.M))


def _read(path: str) -> str:
    return (ROOT / path).read_text(encoding="utf-8")


@pytest.mark.parametrize("document", markdown_files())
def test_every_path_a_document_cites_is_in_the_repository(document: str) -> None:
    assert missing_citations(document, _read(document)) == []


def test_no_tracked_file_cites_the_unshipped_notes() -> None:
    citing = []
    for name in tracked():
        try:
            text = _read(name)
        except UnicodeDecodeError:
            continue  # binary
        citing += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if UNSHIPPED.search(line)]
    assert citing == []


def test_the_checks_catch_what_they_are_for() -> None:
    """The scanner itself: a stale module name, a missing test function and a note are all caught."""
    text = (
        "See `adapters/litellm_engine.py`, `litellm_engine.py`, [notes](docs/notes.md), "
        "`tests/test_docs.py::test_that_does_not_exist` and "
        "`tests/test_docs.py::test_the_checks_catch_what_they_are_for`."
    )
    assert missing_citations("README.md", text) == [
        "docs/notes.md",
        "adapters/litellm_engine.py",
        "litellm_engine.py",
        "tests/test_docs.py::test_that_does_not_exist",
    ]
    assert UNSHIPPED.search("as " + "gateway-protocol" + ".md §4 says")


def _headings(document: str, level: str = "## ") -> list[str]:
    return [line[len(level) :] for line in _read(document).splitlines() if line.startswith(level)]


def test_the_readme_dify_shows_is_for_dify_users_and_developers_have_their_own() -> None:
    assert _headings("README.md") == [
        "Install in Dify",
        "Configure the models",
        "Models",
        "Troubleshooting",
        "Privacy",
        "Performance",
        "Development",
    ]
    developing = _headings("DEVELOPING.md") + _headings("DEVELOPING.md", "### ")
    for topic in ("Quick start", "Building the package", "Upgrading LiteLLM", "Performance", "Reliability"):
        assert topic in developing
    assert "[DEVELOPING.md](DEVELOPING.md)" in _read("README.md")
    # Developer commands stay out of what Dify shows: only building, checking, smoke-testing, regenerating.
    commands = set(re.findall(r"make [a-z-]+", _read("README.md")))
    assert commands <= {"make package", "make demo", "make generate", "make check", "make test"}, commands


@pytest.mark.parametrize("document", markdown_files())
def test_no_section_of_a_document_is_written_twice(document: str) -> None:
    """A section pasted twice (as a conflict resolved by keeping both sides leaves it) is one to delete."""
    headings = _headings(document, "# ") + _headings(document)
    assert sorted({h for h in headings if headings.count(h) > 1}) == []
