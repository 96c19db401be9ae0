"""OpenAI transcription (`/v1/audio/transcriptions`, multipart), through LiteLLM's transcription translation.

The form fields come from LiteLLM's config for the route's provider, the answer is asked for as
`json` and its `text` returned (a gateway answering `verbose_json` anyway is read the same way).
`language` and `prompt` go out only when given. The answer is never streamed.
"""

from __future__ import annotations

import httpx

from adapters.dialects.answers import route_path, unusable_answer
from adapters.dialects.kinds import Clip, Transcript, TranscriptionDialect, TranscriptionRequest
from adapters.engine.litellm_facade import parse_transcription_answer, transcription_form_fields


class OpenAITranscription(TranscriptionDialect):
    name = "openai"

    def request(self, *, provider: str, model: str, clip: Clip) -> TranscriptionRequest:
        options = {"response_format": "json"}
        if clip.language:
            options["language"] = clip.language
        if clip.prompt:
            options["prompt"] = clip.prompt
        fields = transcription_form_fields(provider=provider, model=model, upload=clip.upload, options=options)
        return TranscriptionRequest(form=fields)

    def parse_answer(self, *, provider: str, model: str, response: httpx.Response) -> Transcript:
        with unusable_answer(route_path(response)):
            return Transcript(parse_transcription_answer(provider=provider, model=model, response=response))


DIALECT = OpenAITranscription()
