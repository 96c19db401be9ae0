"""OpenAI text completions (`/v1/completions`): one prompt in, its `text` out, through LiteLLM's translation.

The prompt is the text of the messages, in order; parameters, streaming and the answer's envelope
are the chat format's. Answers and stream events are read in the chat shape (`text` as the
content), so the LLM adapter relays them like chat answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dify_plugin.entities.model.message import PromptMessage, PromptMessageContentType

from adapters.dialects.openai.chat import OpenAIChat
from adapters.engine.litellm_facade import (
    ChatTurn,
    parse_text_completion_answer,
    parse_text_completion_chunk,
    text_completion_request_body,
)


def _prompt_text(messages: Sequence[PromptMessage]) -> str:
    texts = []
    for message in messages:
        content = message.content
        if isinstance(content, str):
            texts.append(content)
        elif content:
            texts.extend(p.data for p in content if p.type == PromptMessageContentType.TEXT)
    return "\n".join(texts)


class OpenAICompletion(OpenAIChat):
    name = "openai-completion"
    modes = frozenset({"completion"})

    def _body(
        self, provider: str, model: str, messages: Sequence[PromptMessage], params: dict[str, Any]
    ) -> dict[str, Any]:
        return text_completion_request_body(model=model, prompt=_prompt_text(messages), params=params)

    def _answer_turn(self, data: dict[str, Any]) -> ChatTurn:
        return parse_text_completion_answer(data=data)

    def _chunk_turn(self, data: dict[str, Any]) -> ChatTurn | None:
        return parse_text_completion_chunk(data=data)


DIALECT = OpenAICompletion()
