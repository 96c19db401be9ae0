"""OpenAI text completions (`/v1/completions`): one prompt in, its `text` out, through LiteLLM's translation.

The prompt is the text of the messages, in order. Answers and stream events are read in the chat
shape (`text` as the content), so the LLM adapter relays them like chat answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from dify_plugin.entities.model.message import PromptMessage, PromptMessageContentType, PromptMessageTool

from adapters.dialects.kinds import ChatAnswer, ChatChunk, ChatDialect
from adapters.dialects.openai.chat import chunk_of, read_answer, wire_params
from adapters.engine.litellm_facade import (
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


class OpenAICompletion(ChatDialect):
    name = "openai-completion"
    modes = frozenset({"completion"})

    def request_body(
        self,
        *,
        provider: str,
        model: str,
        messages: Sequence[PromptMessage],
        params: Mapping[str, Any],
        tools: Sequence[PromptMessageTool],
        stream: bool,
    ) -> dict[str, Any]:
        wire = wire_params(params, tools, stream)
        return text_completion_request_body(model=model, prompt=_prompt_text(messages), params=wire)

    def parse_answer(self, response: httpx.Response) -> ChatAnswer:
        return read_answer(response, parse_text_completion_answer)

    def parse_chunk(self, data: dict[str, Any]) -> ChatChunk:
        return chunk_of(data, parse_text_completion_chunk(data=data))


DIALECT = OpenAICompletion()
