"""Whether provider_configs/dify/ was generated from the provider_configs/ files now on disk.

The generator (adapters/catalog/generator.py, a build tool) records the SHA-256 of each source file
in provider_configs/dify/sources.sha256 (sha256sum's format). Start-up compares that record with the
files on disk: a few hashes of some 60 KB instead of rendering every generated file. A change to the
generator's own code is not seen here; `make check` compares every generated file for that.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
GENERATED_DIR = "provider_configs/dify"
RECORD_FILE = f"{GENERATED_DIR}/sources.sha256"


def _sources(plugin_root: Path) -> dict[str, str]:
    """Relative path → SHA-256 of every provider_configs/ file the generated YAML is made from."""
    configs = plugin_root / "provider_configs"
    files = [*configs.glob("*.yaml"), *(configs / "models").glob("*.yaml")]
    return {
        path.relative_to(plugin_root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(files)
    }


def source_record(plugin_root: Path) -> str:
    """The text of provider_configs/dify/sources.sha256 for the sources now under `plugin_root`."""
    return "".join(f"{digest}  {name}\n" for name, digest in _sources(plugin_root).items())


def changed_sources(plugin_root: Path = PLUGIN_ROOT) -> list[str]:
    """Sources added, removed or edited since provider_configs/dify/ was generated (the record itself if absent)."""
    try:
        text = (plugin_root / RECORD_FILE).read_text(encoding="utf-8")
    except FileNotFoundError:
        return [RECORD_FILE]
    recorded = {}
    for line in text.splitlines():
        digest, _, name = line.partition("  ")
        recorded[name] = digest
    current = _sources(plugin_root)
    return sorted(name for name in recorded.keys() | current.keys() if recorded.get(name) != current.get(name))
