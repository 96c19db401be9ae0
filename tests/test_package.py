"""What users upload is what we tested: the .difypkg, unpacked, installed into a fresh venv, run over stdio.

The fresh venv is built from the package's own requirements.txt with pip (the daemon uses `uv pip`),
which needs the package index: that one test is marked `package_index` and skipped, with the reason,
when pip cannot reach the index (a short `pip download` probe) or AIGW_OFFLINE=1. To keep `make test`
quick the venv is cached under the system temp dir, keyed by the hash of requirements.txt (a cached
venv needs no index); with CI set, or AIGW_FRESH_VENV=1, it is built from scratch.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from dify_plugin.entities.model import ModelFeature

from adapters.catalog.dify_schema import features
from adapters.catalog.model_info import LLMInfo, capabilities
from tests.conftest import PLUGIN_ROOT, Gateway
from tests.stdio_driver import PluginProcess, chat_data
from tests.tools.package import (
    IgnorePattern,
    PackageError,
    check_size,
    icon_problems,
    ignore_patterns,
    manifest_problems,
    package_files,
)

PROVIDER = "aliyun_ai_gateway"
# Never in a package: the checkout's tooling, caches, secrets and test data.
FORBIDDEN_PARTS = {".venv", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "tests", "dist", ".ci"}
FORBIDDEN_FILES = {".env", "Makefile", "requirements-dev.txt", "pytest.ini", "ruff.toml", ".python-version"}
REQUIRED = {
    "manifest.yaml",
    "main.py",
    "requirements.txt",
    "README.md",
    "readme/README_zh_Hans.md",
    "PRIVACY.md",
    "_assets/icon.svg",
    "provider_configs/dify/provider.yaml",
    "provider_configs/models/llm.yaml",
}


# ---------------------------------------------------------------------------------------------
# The rules, one by one


@pytest.mark.parametrize(
    ("pattern", "path", "is_dir", "excluded"),
    [
        ("tests/", "tests", True, True),
        ("tests/", "adapters/tests", True, True),  # no slash inside: any depth
        ("tests/", "tests", False, False),  # a file named like a dir-only pattern stays
        ("*.pyc", "adapters/x.pyc", False, True),
        ("*.pyc", "adapters/x.py", False, False),
        (".env", ".env", False, True),
        (".env", ".env.example", False, False),
        ("/dist", "dist", True, True),  # a leading slash anchors at the root
        ("/dist", "sub/dist", True, False),
        ("docs/*.md", "docs/a.md", False, True),
        ("docs/*.md", "x/docs/a.md", False, False),  # a slash inside anchors too
        ("docs/*.md", "docs/sub/a.md", False, False),
        ("a/**/b", "a/x/y/b", False, True),
        ("**/cassettes", "tests/cassettes", True, True),
        ("build/", "build/out.txt", False, True),  # below a matched directory
        ("file[0-9].txt", "file7.txt", False, True),
        ("file[^0-9].txt", "file7.txt", False, False),
        ("!keep.txt", "keep.txt", False, False),  # the CLI never re-includes
    ],
)
def test_ignore_patterns_match_like_the_cli(pattern: str, path: str, is_dir: bool, excluded: bool) -> None:
    assert IgnorePattern.parse(pattern).excludes(path.split("/"), is_dir) is excluded


def test_a_negation_does_not_bring_back_an_ignored_file(tmp_path: Path) -> None:
    (tmp_path / ".difyignore").write_text("# comment\n\n*.log\n!important.log\n  notes/  \n", encoding="utf-8")
    for name in ("a.log", "important.log", "main.py", "notes/n.txt", "src/notes"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x", encoding="utf-8")
    assert package_files(tmp_path, ignore_patterns(tmp_path)) == [".difyignore", "main.py", "src/notes"]


def test_gitignore_is_read_only_without_a_difyignore(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("secret.txt\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("x", encoding="utf-8")
    assert package_files(tmp_path, ignore_patterns(tmp_path)) == [".gitignore"]
    (tmp_path / ".difyignore").write_text("nothing\n", encoding="utf-8")
    assert "secret.txt" in package_files(tmp_path, ignore_patterns(tmp_path))


def test_an_oversized_package_fails_listing_the_five_largest_files() -> None:
    files = package_files(PLUGIN_ROOT, ignore_patterns(PLUGIN_ROOT))
    with pytest.raises(PackageError) as caught:
        check_size(PLUGIN_ROOT, files, max_size=10_000)
    message = str(caught.value)
    assert "uncompressed size is less than 10000 bytes" in message
    assert "5. name: " in message and "6. name: " not in message


def _manifest() -> dict:
    return yaml.safe_load((PLUGIN_ROOT / "manifest.yaml").read_text(encoding="utf-8"))


def test_the_manifest_passes_the_daemons_rules() -> None:
    files = set(package_files(PLUGIN_ROOT, ignore_patterns(PLUGIN_ROOT)))
    assert manifest_problems(_manifest(), files) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        ({"author": "AIGateway"}, "author"),
        ({"author": "3f2a1b4c-1d2e-4f5a-8b9c-0d1e2f3a4b5c"}, "UUID"),
        ({"name": "Aliyun Gateway"}, "name"),
        ({"version": "1.0"}, "version"),
        ({"version": "1.0.0-a-very-long-prerelease-tag"}, "version"),
        ({"resource": {"permission": {}}}, "resource.memory"),
        (
            {"meta": {"version": "0.0.1", "arch": ["amd64"], "runner": {"language": "python", "version": "3.11"}}},
            "runner",
        ),
        ({"created_at": "2026-11-29"}, "created_at"),
        ({"created_at": "2026-13-29T00:00:00Z"}, "created_at"),
        ({"tags": ["llm"]}, "tags"),
        ({"plugins": {"models": ["provider/missing.yaml"]}}, "not in the package"),
        ({"plugins": {"models": ["provider_configs/dify/provider.yaml"], "tools": ["t.yaml"]}}, "cannot also"),
    ],
)
def test_manifest_mistakes_are_named(change: dict, complaint: str) -> None:
    files = set(package_files(PLUGIN_ROOT, ignore_patterns(PLUGIN_ROOT)))
    problems = manifest_problems(_manifest() | change, files)
    assert any(complaint in problem for problem in problems), problems


# Model features Dify's API accepts only from a release later than its plugin system's first (1.0.0):
# Dify parses features into a closed enum and refuses the whole provider on an unknown one.
FEATURE_SINCE = {"structured-output": (1, 5, 1)}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_minimum_dify_version_is_the_floor_of_the_model_features_we_declare() -> None:
    everything = LLMInfo(mode="chat", **dict.fromkeys(capabilities(LLMInfo), True))
    possible = set(features(everything))  # what a catalog or customizable model can declare
    shipped = set()
    for path in (PLUGIN_ROOT / "provider_configs/dify/models").rglob("*.yaml"):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        shipped |= set(document.get("features") or []) if isinstance(document, dict) else set()
    assert "structured-output" in shipped and shipped <= possible <= {f.value for f in ModelFeature}
    floor = max([(1, 0, 0), *(FEATURE_SINCE[f] for f in possible if f in FEATURE_SINCE)])
    declared = _manifest()["meta"]["minimum_dify_version"]
    assert _version(declared) == floor
    text = ".".join(map(str, floor))
    for readme in ("README.md", "readme/README_zh_Hans.md"):
        assert f"Dify {text}" in (PLUGIN_ROOT / readme).read_text(encoding="utf-8"), readme


def test_every_icon_in_every_language_must_exist() -> None:
    provider = {"icon_small": {"en_US": "icon_s_en.svg", "zh_Hans": "icon_s_zh.svg"}, "icon_large": {"en_US": "x.png"}}
    problems = icon_problems(
        _manifest() | {"icon_dark": "dark.svg"}, [provider], {"_assets/icon.svg", "_assets/icon_s_en.svg"}
    )
    assert problems == [
        "manifest icon_dark _assets/dark.svg not found",
        "provider icon_small zh_Hans _assets/icon_s_zh.svg not found",
        "provider icon_large en_US _assets/x.png not found",
    ]


def test_a_stale_generated_yaml_stops_the_build(tmp_path: Path) -> None:
    copy = tmp_path / "plugin"
    shutil.copytree(PLUGIN_ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "dist", "__pycache__", "tests"))
    generated = copy / "provider_configs/dify/models/llm/qwen-max.yaml"
    generated.write_text(generated.read_text(encoding="utf-8") + "# edited by hand\n", encoding="utf-8")
    done = _package(copy, tmp_path / "out")
    assert done.returncode == 1
    assert "run `make generate`" in done.stderr and "qwen-max.yaml" in done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _git_copy(tmp_path: Path) -> Path:
    """A copy of the plugin as a fresh git repository with every file staged."""
    copy = tmp_path / "plugin"
    ignored = shutil.ignore_patterns(".venv", ".git", "dist", "__pycache__", "tests", ".pytest_cache", ".ruff_cache")
    shutil.copytree(PLUGIN_ROOT, copy, ignore=ignored)
    for command in (["git", "init", "-q"], ["git", "add", "-A"]):
        subprocess.run(command, cwd=copy, check=True, capture_output=True, timeout=60)
    return copy


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_files_git_does_not_track_stop_the_build_listed(tmp_path: Path) -> None:
    copy = _git_copy(tmp_path)
    (copy / ".env.local").write_text("API_KEY=sk-never-ship-me\n", encoding="utf-8")
    (copy / "adapters" / "scratch.py").write_text("print('notes')\n", encoding="utf-8")
    done = _package(copy, tmp_path / "out")
    assert done.returncode == 1
    assert "2 file(s) are not tracked by git, and .difyignore would pack them:" in done.stderr
    assert "\n  .env.local\n  adapters/scratch.py\n" in done.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_generated_files_need_not_be_tracked_yet(tmp_path: Path) -> None:
    copy = _git_copy(tmp_path)
    generated = "provider_configs/dify/models/llm/qwen-max.yaml"
    subprocess.run(["git", "rm", "-q", "--cached", generated], cwd=copy, check=True, timeout=60)
    done = _package(copy, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(next((tmp_path / "out").iterdir())) as archive:
        assert generated in archive.namelist()


def test_a_folder_outside_git_is_not_packaged(tmp_path: Path) -> None:
    copy = tmp_path / "plugin"
    shutil.copytree(PLUGIN_ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "dist", "__pycache__", "tests"))
    done = _package(copy, tmp_path / "out")
    assert done.returncode == 1 and "is not a git checkout" in done.stderr


# ---------------------------------------------------------------------------------------------
# The package itself


def _package(root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.tools.package", "--root", str(root), "--out", str(out)],
        cwd=PLUGIN_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    done = _package(PLUGIN_ROOT, out)
    assert done.returncode == 0, done.stderr
    manifest = _manifest()
    package = out / f"{manifest['name']}-{manifest['version']}.difypkg"
    assert str(package) in done.stdout and "FORCE_VERIFYING_SIGNATURE=false" in done.stdout
    target = tmp_path_factory.mktemp("unpacked")
    with zipfile.ZipFile(package) as archive:
        assert archive.testzip() is None
        archive.extractall(target)
    return target


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_the_package_holds_what_difyignore_lets_through_and_nothing_else(unpacked: Path) -> None:
    names = _files(unpacked)
    assert names == set(package_files(PLUGIN_ROOT, ignore_patterns(PLUGIN_ROOT)))
    assert names >= REQUIRED
    for name in names:
        parts = name.split("/")
        assert not FORBIDDEN_PARTS & set(parts[:-1]), name
        assert parts[-1] not in FORBIDDEN_FILES and not parts[-1].endswith((".pyc", ".difypkg")), name
        assert "cassette" not in name, name
    assert sum((unpacked / n).stat().st_size for n in names) < 50 * 1024 * 1024


def test_building_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    digests = set()
    for run in ("a", "b"):
        assert _package(PLUGIN_ROOT, tmp_path / run).returncode == 0
        (package,) = (tmp_path / run).iterdir()
        digests.add(hashlib.sha256(package.read_bytes()).hexdigest())
    assert len(digests) == 1


PROBE_SECONDS = 30  # pip's own network timeout is 5 s with no retries; this bounds the whole probe


def _first_requirement(requirements: Path) -> str:
    lines = requirements.read_text(encoding="utf-8").splitlines()
    return next(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def index_unreachable(requirements: Path, workdir: Path) -> str | None:
    """Why pip cannot install `requirements` here, or None: AIGW_OFFLINE=1, or one `pip download` failing."""
    if os.environ.get("AIGW_OFFLINE") == "1":
        return "AIGW_OFFLINE=1: building a fresh venv needs the package index"
    requirement = _first_requirement(requirements)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    command += ["--timeout", "5", "--retries", "0", "--dest", str(workdir), requirement]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        return f"no answer from the package index: `pip download {requirement}` took over {PROBE_SECONDS} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"pip cannot fetch from the package index: `pip download {requirement}` failed ({last})"
    return None


def _fresh_venv(requirements: Path, home: Path, probe_dir: Path) -> Path:
    """A venv under `home` with only the package's requirements, reused if a complete one is there.

    Skips the test when a venv has to be built and pip cannot reach the package index.
    """
    digest = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:16]
    venv = home / f"aigw-difypkg-venv-{digest}"
    python = venv / "bin" / "python"
    if (venv / ".complete").exists():
        return python
    if reason := index_unreachable(requirements, probe_dir):
        pytest.skip(reason)
    building = Path(tempfile.mkdtemp(prefix=f"{venv.name}-building-", dir=home))
    subprocess.run([sys.executable, "-m", "venv", str(building)], check=True, timeout=120)
    subprocess.run(
        [building / "bin" / "python", "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", requirements],
        check=True,
        timeout=900,
    )
    (building / ".complete").touch()
    try:
        building.rename(venv)  # atomic: a concurrent run either wins or finds ours
    except OSError:
        shutil.rmtree(building, ignore_errors=True)
    return python


@pytest.fixture(scope="module")
def packaged_plugin(unpacked: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PluginProcess]:
    fresh = bool(os.environ.get("CI")) or os.environ.get("AIGW_FRESH_VENV") == "1"
    home = tmp_path_factory.mktemp("venv") if fresh else Path(tempfile.gettempdir())
    python = _fresh_venv(unpacked / "requirements.txt", home, tmp_path_factory.mktemp("probe"))
    # The daemon's environment, not ours: nothing from this checkout can leak onto the plugin's path.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    with PluginProcess.start(unpacked, python=str(python), env=env, inherit_env=False, ready_timeout=60) as plugin:
        yield plugin


@pytest.mark.package_index
def test_the_unpacked_package_runs_from_a_fresh_venv(packaged_plugin: PluginProcess, gateway: Gateway) -> None:
    plugin = packaged_plugin
    assert plugin.manifest is not None and plugin.manifest["name"] == PROVIDER
    credentials = gateway.credentials()

    result = plugin.request(
        "validate_provider_credentials",
        {"provider": PROVIDER, "credentials": {**credentials, "validate_model": "qwen-turbo"}},
    )
    assert result[-1]["result"] is True

    items = plugin.request("invoke_llm", chat_data(PROVIDER, "qwen-plus", credentials, "packaged and streamed"))
    assert len(items) > 2
    assert "".join(i["delta"]["message"]["content"] for i in items) == "echo: packaged and streamed"

    data = {"provider": PROVIDER, "model": "text-embedding-v4", "credentials": credentials, "texts": ["a", "b c"]}
    embedded = plugin.request("invoke_text_embedding", data)[-1]
    assert len(embedded["embeddings"]) == 2 and len(embedded["embeddings"][0]) > 0
    assert gateway.emulator.received[-1].path.endswith("/text-embedding/text-embedding")
    # The generator is not shipped, and the shipped YAML matches the shipped sources (no staleness warning).
    assert not (plugin.plugin_dir / "adapters/catalog/generator.py").exists()
    assert not [log for log in plugin.logs if "out of date" in log.get("message", "")]


def test_every_link_of_the_readmes_dify_shows_resolves_inside_the_package(unpacked: Path) -> None:
    """Dify shows README.md and readme/*.md from the package: a relative link must land in it too."""
    names = _files(unpacked)
    broken = []
    for readme in sorted(n for n in names if n == "README.md" or (n.startswith("readme/") and n.endswith(".md"))):
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", (unpacked / readme).read_text(encoding="utf-8")):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(readme), target))
            if resolved not in names and not any(n.startswith(f"{resolved}/") for n in names):
                broken.append(f"{readme} -> {target}")
    assert broken == []
