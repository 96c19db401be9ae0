"""Start-up never dies silently: a broken provider_configs/ reaches the daemon's log with its reason."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import PLUGIN_ROOT, run_python_in


def _copy(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns(".venv", ".git", "tests", "__pycache__", "dist", ".ruff_cache")
    return Path(shutil.copytree(PLUGIN_ROOT, tmp_path / "plugin", ignore=ignore))


def _start(plugin_dir: Path) -> subprocess.CompletedProcess[str]:
    return run_python_in(plugin_dir, "-m", "main")


def _log_events(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_an_invalid_catalog_stops_start_up_with_the_reason_in_the_daemon_log(tmp_path: Path) -> None:
    plugin_dir = _copy(tmp_path)
    llm = plugin_dir / "provider_configs" / "models" / "llm.yaml"
    llm.write_text(
        llm.read_text(encoding="utf-8").replace("route: openai-chat", "route: open-chat", 1), encoding="utf-8"
    )
    done = _start(plugin_dir)
    assert done.returncode == 1
    events = [e for e in _log_events(done.stdout) if e.get("event") == "log"]
    assert events and events[0]["data"]["level"] == "ERROR"
    message = events[0]["data"]["message"]
    assert "llm.yaml" in message and "field 'route'" in message and "unknown route preset" in message
    assert "unknown route preset" in done.stderr
    assert not any(e.get("event") == "heartbeat" for e in _log_events(done.stdout))


def test_a_stale_generated_yaml_is_reported_but_the_plugin_starts(tmp_path: Path) -> None:
    from tests.stdio_driver import PluginProcess

    plugin_dir = _copy(tmp_path)
    params = plugin_dir / "provider_configs" / "parameters.yaml"
    params.write_text(params.read_text(encoding="utf-8").replace("Seed", "Random seed", 1), encoding="utf-8")
    with PluginProcess.start(plugin_dir, env={"INSTALL_METHOD": "local", "PYTHONPATH": ""}) as plugin:
        assert plugin.heartbeats >= 1
        warnings = [log["message"] for log in plugin.logs if log.get("level") == "WARNING"]
    assert any(
        "provider_configs/dify/ is out of date" in w and "provider_configs/parameters.yaml" in w for w in warnings
    )


def test_start_up_checks_staleness_without_the_generator(tmp_path: Path) -> None:
    """The generator is a build tool: start-up reads the recorded source digests instead of rendering."""
    plugin_dir = _copy(tmp_path)
    (plugin_dir / "adapters" / "catalog" / "generator.py").unlink()  # as in the package
    models = plugin_dir / "provider_configs" / "models" / "rerank.yaml"
    models.write_text(models.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    probe = (
        "import sys; from adapters.runtime.startup import check_provider_configs; check_provider_configs(); "
        "print('generator' if 'adapters.catalog.generator' in sys.modules else 'no generator')"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=plugin_dir, capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().endswith("no generator")
    assert "WARNING: provider_configs/dify/ is out of date" in done.stderr
    assert "changed since it was generated: provider_configs/models/rerank.yaml" in done.stderr


def test_a_generated_folder_without_its_source_record_is_reported(tmp_path: Path) -> None:
    from adapters.catalog.freshness import RECORD_FILE, changed_sources

    plugin_dir = _copy(tmp_path)
    assert changed_sources(plugin_dir) == []
    (plugin_dir / RECORD_FILE).unlink()
    assert changed_sources(plugin_dir) == [RECORD_FILE]


def test_what_only_some_calls_need_is_not_imported_before_the_first_heartbeat() -> None:
    """main.py up to plugin.run() (the first heartbeat comes next): no LiteLLM, no JWT libraries."""
    probe = (
        "import sys, main; print(sorted(name for name in ('litellm', 'jwt', 'cryptography') if name in sys.modules))"
    )
    done = run_python_in(PLUGIN_ROOT, "-c", probe, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"
