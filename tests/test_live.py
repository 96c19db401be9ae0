"""Against a real AI Gateway, when its credentials are in the environment; skipped otherwise.

    AIGW_LIVE_ENDPOINT=https://gw.example.com/v1 AIGW_LIVE_API_KEY=sk-... make test

The proof that runs in CI is the emulator and the cassettes; these are the operator's extra check
that the same paths work on their gateway (models from AIGW_LIVE_MODEL, AIGW_LIVE_EMBEDDING_MODEL).
"""

from __future__ import annotations

import os

import pytest
from dify_plugin.entities.model.message import UserPromptMessage

from tests.cassettes import LIVE_ENDPOINT, live_credentials
from tests.conftest import adapter

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not LIVE_ENDPOINT, reason="set AIGW_LIVE_ENDPOINT and AIGW_LIVE_API_KEY to run"),
]
CHAT_MODEL = os.environ.get("AIGW_LIVE_MODEL", "qwen-plus")


def test_live_credentials_validate() -> None:
    adapter("llm").validate_credentials(CHAT_MODEL, live_credentials())


def test_live_streamed_chat_is_complete_and_priced() -> None:
    chunks = list(
        adapter("llm").invoke(
            CHAT_MODEL, live_credentials(), [UserPromptMessage(content="Say hello.")], {"max_tokens": 50}, stream=True
        )
    )
    assert "".join(c.delta.message.content for c in chunks).strip()
    assert chunks[-1].delta.usage.total_tokens > 0


@pytest.mark.skipif(not os.environ.get("AIGW_LIVE_EMBEDDING_MODEL"), reason="set AIGW_LIVE_EMBEDDING_MODEL")
def test_live_embedding() -> None:
    model = os.environ["AIGW_LIVE_EMBEDDING_MODEL"]
    result = adapter("text-embedding").invoke(model, live_credentials(), ["hello", "gateway"])
    assert len(result.embeddings) == 2 and len(result.embeddings[0]) > 1
