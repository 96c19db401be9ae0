"""OpenAI transcription (`/v1/audio/transcriptions`, multipart), through LiteLLM's transcription translation.

The form fields come from LiteLLM's config for the route's provider, the answer is asked for as
`json` and its `text` returned (a gateway answering `verbose_json` anyway is read the same way).
`language` and `prompt` go out only when given.
"""

from __future__ import annotations

from typing import Any

import httpx

from adapters.dialects.answers import route_path, unusable_answer
from adapters.dialects.kinds import TranscriptionDialect
from adapters.engine.litellm_facade import parse_transcription_answer, transcription_form_fields


class OpenAITranscription(TranscriptionDialect):
    name = "openai"

    def request_fields(
        self,
        *,
        provider: str,
        model: str,
        upload: tuple[str, bytes, str],
        language: str | None,
        prompt: str | None,
    ) -> dict[str, Any]:
        options = {"response_format": "json"}
        if language:
            options["language"] = language
        if prompt:
            options["prompt"] = prompt
        return transcription_form_fields(provider=provider, model=model, upload=upload, options=options)

    def parse_answer(self, *, provider: str, model: str, response: httpx.Response) -> str:
        with unusable_answer(route_path(response)):
            return parse_transcription_answer(provider=provider, model=model, response=response)


DIALECT = OpenAITranscription()
