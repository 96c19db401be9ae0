"""`make demo` keeps working: it exits 0 and shows every model type and every consumer authentication."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PLUGIN_ROOT
from tests.demo import _live_target

SECTIONS = (
    "== Checking the credentials",
    "== LLM: streamed chat with qwen-plus ==",
    "== LLM: tool call",
    "== LLM: reasoning model",
    "== Text embedding ==",
    "== Rerank ==",
    "== Speech to text",
    "== Text to speech ==",
    "== The same chat as an API-key consumer ==",
    "== The same chat as a JWT consumer ==",
    "== The same chat as an HMAC consumer ==",
    "== A rejected consumer key ==",
)


def test_demo_walks_through_every_model_type_and_auth_method(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIGW_LIVE_")}
    env["AIGW_DEMO_OUT"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "tests.demo"],
        cwd=PLUGIN_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for section in SECTIONS:
        assert section in out
    assert "FAILED" not in out and "skipped" not in out
    assert "→ tool call get_weather(" in out
    assert "<think>" in out
    assert "1024 dimensions, first values [" in out
    assert "1. 0.500  An AI gateway" in out
    assert "transcript: 'transcript of audio.wav" in out
    for consumer in ("demo-key", "demo-jwt", "demo-hmac"):
        assert f"the gateway authenticated consumer {consumer!r}" in out
    assert "InvokeAuthorizationError" in out
    assert f"written to {tmp_path / 'speech.mp3'}" in out
    assert (tmp_path / "speech.mp3").read_bytes()[:2] == b"\xff\xfb"
    assert out.rstrip().endswith('{"demo": "done"}')


def test_live_mode_runs_only_the_configured_consumers_and_models(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("AIGW_LIVE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AIGW_LIVE_HMAC_ACCESS_KEY", "ak")
    monkeypatch.setenv("AIGW_LIVE_HMAC_SECRET_KEY", "sk")
    monkeypatch.setenv("AIGW_LIVE_RERANK_MODEL", "gte-rerank-v2")
    target = _live_target("https://gw.example.com/v1")
    assert list(target.auth) == ["hmac"]
    assert target.credentials()["auth_method"] == "hmac"
    assert target.models == {"chat": "qwen-plus", "rerank": "gte-rerank-v2"}
