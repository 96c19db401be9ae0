"""`make package`: dist/<name>-<version>.difypkg, built the way `dify plugin package` builds it.

No Go CLI needed. The rules follow the CLI and the plugin daemon (pkg/plugin_packager and
pkg/entities/plugin_entities in langgenius/dify-plugin-daemon):

- Files: every file under the plugin directory except what `.difyignore` excludes (`.gitignore` only
  when there is no `.difyignore`). Each line is one go-git gitignore pattern, matched on its own; as
  in the CLI, a path is left out when any pattern excludes it, so a `!pattern` line re-includes
  nothing. An excluded directory is not entered.
- Only what git tracks (or the generator makes): the CLI packs whatever lies in the folder, so a
  stray `.env.local` or a scratch file would ship. Here every file `.difyignore` lets in must be
  tracked by git (staged is enough) or be one of the generated files; otherwise the build stops
  and lists them.
- Size: at most 50 MB uncompressed (`--max-size`); over it, the five largest files are listed.
- Icons: the manifest's icon and icon_dark and the provider's icons, in every language, in _assets/.
- Manifest: the daemon's install-time rules (lowercase author that is not UUID-like, name, version,
  resource.memory, runner, created_at as RFC 3339, tags, plugins.models files present).
- Model YAML: provider_configs/dify/ must be what the generator makes of provider_configs/ now, and
  the staged copy must load through the SDK exactly as the daemon-run plugin loads it.

The archive is a zip of those files in path order with fixed timestamps, so it is reproducible.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from dify_plugin.core.entities.plugin.setup import PluginConfiguration
from dify_plugin.core.utils.yaml_loader import load_yaml_file
from dify_plugin.entities.model.provider import ModelProviderConfiguration

from adapters.catalog.generator import render, stale_files
from adapters.catalog.loader import CatalogError

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
MAX_SIZE = 50 * 1024 * 1024  # the CLI's --max-size default, and the daemon's MAX_PLUGIN_PACKAGE_SIZE
LANGUAGES = ("en_US", "zh_Hans", "ja_JP", "pt_BR")
# manifest_entities/tags.go
TAGS = frozenset(
    {
        *("search", "image", "videos", "weather", "finance", "design", "travel", "social", "news", "medical"),
        *("productivity", "education", "business", "entertainment", "utilities", "agent", "other", "trigger"),
    }
)
_AUTHOR = re.compile(r"^[a-z0-9_-]{1,64}$")
_UUID = re.compile(r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.IGNORECASE)
_NAME = re.compile(r"^[a-z0-9_-]{1,128}$")
_VERSION = re.compile(r"^\d{1,4}(\.\d{1,4}){2}(-\w{1,16})?$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


class PackageError(Exception):
    """The plugin cannot be packaged; the message says what to fix."""


# ---------------------------------------------------------------------------------------------
# .difyignore


def _segment_regex(glob: str) -> re.Pattern[str] | None:
    """Go's filepath.Match for one path segment (`*`, `?`, `[a-z]`, `[^x]`, `\\` escapes); None if malformed."""
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i]))
        elif char == "[":
            end = glob.find("]", i + 2)
            if end < 0:
                return None
            body = glob[i + 1 : end]
            negate = body.startswith("^")
            body = body[1:] if negate else body
            escaped = "".join("\\" + c if c in "\\]^[" else c for c in body)
            out.append(f"[{'^' if negate else ''}{escaped}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _match(glob: str, name: str) -> bool:
    regex = _segment_regex(glob)
    return bool(regex and regex.match(name))


@dataclass(frozen=True)
class IgnorePattern:
    """One line of .difyignore, matched like go-git's gitignore.ParsePattern(line, nil).Match."""

    segments: tuple[str, ...]
    include: bool  # a `!` line: the CLI never acts on it
    dir_only: bool  # trailing `/`
    anchored: bool  # contains `/` elsewhere: matched from the plugin root, segment by segment

    @classmethod
    def parse(cls, line: str) -> IgnorePattern:
        include = line.startswith("!")
        line = line[1:] if include else line
        dir_only = line.endswith("/")
        line = line[:-1] if dir_only else line
        return cls(tuple(line.split("/")), include, dir_only, "/" in line)

    def excludes(self, parts: Sequence[str], is_dir: bool) -> bool:
        matched = self._anchored_match(parts, is_dir) if self.anchored else self._name_match(parts, is_dir)
        return matched and not self.include

    def _name_match(self, parts: Sequence[str], is_dir: bool) -> bool:
        # A pattern without a slash matches any segment of the path, but `name/` never a file's own name.
        for index, name in enumerate(parts):
            if _match(self.segments[0], name):
                return not (self.dir_only and not is_dir and index == len(parts) - 1)
        return False

    def _anchored_match(self, parts: Sequence[str], is_dir: bool) -> bool:
        # Segment by segment from the root; `**` skips any number of directories. A match of a leading
        # part of the path (a directory) excludes everything below it.
        path, matched, traverse = list(parts), False, False
        for index, segment in enumerate(self.segments):
            if segment == "":
                traverse = False
                continue
            if segment == "**":
                if index == len(self.segments) - 1:
                    break
                traverse = True
                continue
            if "**" in segment or not path:
                return False
            if traverse:
                traverse = False
                while path:
                    name = path.pop(0)
                    if _match(segment, name):
                        matched = True
                        break
                    if not path:
                        matched = False
            else:
                if not _match(segment, path[0]):
                    return False
                matched = True
                path.pop(0)
        if matched and self.dir_only and not is_dir and not path:
            return False  # `a/b/` names a directory, not the file a/b
        return matched


def ignore_patterns(root: Path) -> list[IgnorePattern]:
    """The patterns of `.difyignore`, or of `.gitignore` when there is no `.difyignore`."""
    for name in (".difyignore", ".gitignore"):
        if (root / name).is_file():
            lines = (line.strip() for line in (root / name).read_text(encoding="utf-8").split("\n"))
            return [IgnorePattern.parse(line) for line in lines if line and not line.startswith("#")]
    return []


def package_files(root: Path, patterns: Sequence[IgnorePattern]) -> list[str]:
    """Relative posix paths of the files that go into the package, sorted like the CLI sorts them."""

    def walk(folder: Path, prefix: tuple[str, ...]) -> Iterator[str]:
        for entry in sorted(folder.iterdir(), key=lambda p: p.name):
            parts = (*prefix, entry.name)
            is_dir = entry.is_dir() and not entry.is_symlink()  # WalkDir does not follow links
            if any(p.excludes(parts, is_dir) for p in patterns):
                continue
            if is_dir:
                yield from walk(entry, parts)
            elif entry.is_dir():
                raise PackageError(f"{'/'.join(parts)} is a symlink to a directory; the CLI cannot pack it")
            else:
                yield "/".join(parts)

    return sorted(walk(root, ()))


# ---------------------------------------------------------------------------------------------
# Checks


def check_size(root: Path, files: Sequence[str], max_size: int) -> int:
    sizes = {name: (root / name).stat().st_size for name in files}
    total = sum(sizes.values())
    if total > max_size:
        top = sorted(sizes.items(), key=lambda item: -item[1])[:5]
        listing = "\n".join(f"{i}. name: {name}, size: {size} bytes" for i, (name, size) in enumerate(top, 1))
        raise PackageError(
            f"Plugin package size is too large. Please ensure the uncompressed size is less than {max_size} bytes.\n"
            f"Packaged file info:\n{listing}"
        )
    return total


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise PackageError(f"{path.name} is not a YAML mapping")
    return data


def _is_rfc3339(value: object) -> bool:
    if isinstance(value, datetime):  # an unquoted YAML timestamp
        return value.tzinfo is not None
    if not isinstance(value, str) or not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper())
    except ValueError:
        return False
    return True


def manifest_problems(manifest: dict[str, Any], files: set[str]) -> list[str]:
    """What the daemon's manifest validation and ManifestValidate would reject."""
    problems = []
    author, name, version = str(manifest.get("author", "")), str(manifest.get("name", "")), manifest.get("version")
    if not _AUTHOR.match(author) or _UUID.match(author):
        problems.append(f"author {author!r} must match ^[a-z0-9_-]{{1,64}}$ and not look like a UUID")
    if not _NAME.match(name):
        problems.append(f"name {name!r} must match ^[a-z0-9_-]{{1,128}}$")
    if not isinstance(version, str) or not _VERSION.match(version):
        problems.append(
            f"version {version!r} must be a quoted string matching ^\\d{{1,4}}(\\.\\d{{1,4}}){{2}}(-\\w{{1,16}})?$"
        )
    if manifest.get("type") != "plugin":
        problems.append("type must be plugin")
    for field in ("label", "description"):
        if not (manifest.get(field) or {}).get("en_US"):
            problems.append(f"{field}.en_US is required")
    resource = manifest.get("resource") or {}
    if not isinstance(resource.get("memory"), int) or resource["memory"] <= 0:
        problems.append("resource.memory (bytes, an integer) is required")
    meta = manifest.get("meta") or {}
    if not meta.get("version"):
        problems.append("meta.version is required")
    if not meta.get("arch") or not set(meta["arch"]) <= {"amd64", "arm64"}:
        problems.append("meta.arch must be a non-empty subset of [amd64, arm64]")
    runner = meta.get("runner") or {}
    expected = {"language": "python", "version": "3.12", "entrypoint": "main"}
    if {k: runner.get(k) for k in expected} != expected:
        problems.append(f"meta.runner must be {expected} (version as a quoted string), not {runner}")
    elif "main.py" not in files:
        problems.append("the entrypoint main.py is not in the package")
    if not _is_rfc3339(created := manifest.get("created_at")):
        problems.append(f"created_at {created!r} must be an RFC 3339 time, e.g. '2026-01-31T00:00:00Z'")
    if unknown := sorted(set(manifest.get("tags") or []) - TAGS):
        problems.append(f"tags {unknown} are not among Dify's tags {sorted(TAGS)}")
    if (privacy := manifest.get("privacy")) and privacy not in files:
        problems.append(f"privacy file {privacy} is not in the package")
    plugins = manifest.get("plugins") or {}
    if others := [kind for kind, entries in plugins.items() if kind != "models" and entries]:
        problems.append(f"a model plugin cannot also declare {others}")
    models = plugins.get("models") or []
    if not models:
        problems.append("plugins.models lists no provider YAML")
    problems += [f"plugins.models file {path} is not in the package" for path in models if path not in files]
    if "requirements.txt" not in files and "pyproject.toml" not in files:
        problems.append("requirements.txt (or pyproject.toml) must be in the package for the daemon to install")
    return problems


def icon_problems(manifest: dict[str, Any], providers: Sequence[dict[str, Any]], files: set[str]) -> list[str]:
    """Icons the daemon's CheckAssetsValid would not find in _assets/."""
    wanted = [(f"manifest {key}", manifest[key]) for key in ("icon", "icon_dark") if manifest.get(key)]
    for provider in providers:
        for key in ("icon_small", "icon_large", "icon_small_dark", "icon_large_dark"):
            icons = provider.get(key) or {}
            wanted += [(f"provider {key} {lang}", icons[lang]) for lang in LANGUAGES if icons.get(lang)]
    return [f"{what} _assets/{name} not found" for what, name in wanted if f"_assets/{name}" not in files]


def tracked_files(root: Path) -> set[str]:
    """The files git tracks under `root` (staged ones included), relative to it."""
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached"], cwd=root, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError:
        done = None
    if done is None or done.returncode != 0:
        raise PackageError(
            f"{root} is not a git checkout (or git is not installed): the package holds only what git tracks, "
            "so that no stray file ships"
        )
    return {name for name in done.stdout.split("\0") if name}


def check_only_tracked_files(root: Path, files: Sequence[str]) -> None:
    """Every file to be packed is tracked by git or generated; else the build stops, listing the others."""
    known = tracked_files(root) | set(render(root / "provider_configs"))
    if strays := [name for name in files if name not in known]:
        raise PackageError(
            f"{len(strays)} file(s) are not tracked by git, and .difyignore would pack them:\n  "
            + "\n  ".join(strays)
            + "\nAdd them to git if they belong to the plugin; otherwise delete them or list them in .difyignore."
        )


def check_generated_yaml(root: Path) -> None:
    """provider_configs/dify/ must be exactly what the generator makes of provider_configs/ (`make check`)."""
    try:
        stale = stale_files(root)
    except CatalogError as exc:
        raise PackageError(f"provider_configs error: {exc}") from exc
    if stale:
        raise PackageError("generated Dify YAML is out of date; run `make generate`:\n  " + "\n  ".join(stale))


def load_like_the_plugin(staging: Path, provider_paths: Sequence[str]) -> int:
    """Parse the staged manifest and provider YAML with the SDK, from inside the staging directory.

    The SDK expands the model globs from the working directory, as the running plugin does, so a glob
    that matches nothing in the package shows up here. Returns the number of predefined models.
    """
    with contextlib.chdir(staging):
        try:
            PluginConfiguration(**load_yaml_file("manifest.yaml"))
            documents = [load_yaml_file(path) for path in provider_paths]
            declared = sum(len(ModelProviderConfiguration(**doc).models) for doc in documents)
        except Exception as exc:
            raise PackageError(f"the SDK rejects the staged plugin: {exc}") from exc
        on_disk = {
            path
            for doc in documents
            for source in (doc.get("models") or {}).values()
            for pattern in source.get("predefined", [])
            for path in Path().glob(pattern)
            if not path.name.endswith("_position.yaml")
        }
        sources = [
            source
            for doc in documents
            for python in [(doc.get("extra") or {}).get("python") or {}]
            for source in [python.get("provider_source"), *python.get("model_sources", [])]
            if source and not Path(source).is_file()
        ]
    if sources:
        raise PackageError(f"extra.python sources missing from the package: {sources}")
    if declared == 0 or declared != len(on_disk):
        raise PackageError(f"the SDK loaded {declared} predefined models; the package holds {len(on_disk)} model files")
    return declared


# ---------------------------------------------------------------------------------------------
# Build


def build(root: Path = PLUGIN_ROOT, out_dir: Path | None = None, max_size: int = MAX_SIZE) -> Path:
    """Check the plugin at `root`, stage the files the CLI would pack, and write the .difypkg."""
    root = root.resolve()
    manifest = _yaml(root / "manifest.yaml")
    check_generated_yaml(root)
    files = package_files(root, ignore_patterns(root))
    check_only_tracked_files(root, files)
    check_size(root, files, max_size)
    present = set(files)
    provider_paths = list((manifest.get("plugins") or {}).get("models") or [])
    problems = manifest_problems(manifest, present)
    providers = [_yaml(root / path) for path in provider_paths if path in present]
    problems += icon_problems(manifest, providers, present)
    if problems:
        raise PackageError("manifest or assets invalid:\n  " + "\n  ".join(problems))

    out_dir = (out_dir or root / "dist").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{manifest['name']}-{manifest['version']}.difypkg"
    with tempfile.TemporaryDirectory(prefix="difypkg-") as tmp:
        staging = Path(tmp)
        for name in files:
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / name, staging / name)
        load_like_the_plugin(staging, provider_paths)
        partial = target.with_suffix(".difypkg.partial")
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name in files:
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                archive.writestr(info, (staging / name).read_bytes())
        partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=PLUGIN_ROOT, help="plugin directory (default: this checkout)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <root>/dist)")
    parser.add_argument("--max-size", type=int, default=MAX_SIZE, help="uncompressed size limit in bytes")
    args = parser.parse_args(argv)
    try:
        target = build(args.root, args.out, args.max_size)
    except PackageError as exc:
        print(f"package failed: {exc}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(target) as archive:
        entries = archive.infolist()
    unpacked = sum(e.file_size for e in entries)
    print(f"{target} ({len(entries)} files, {unpacked:,} bytes uncompressed, {target.stat().st_size:,} packed)")
    print("Unsigned: the plugin daemon must run with FORCE_VERIFYING_SIGNATURE=false to install it.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
