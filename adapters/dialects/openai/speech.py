"""OpenAI speech (`/v1/audio/speech`): `{"model","input","voice","response_format"}` → the audio bytes.

LiteLLM has no provider-level translation for this API (`litellm.speech()` goes through the OpenAI
SDK), so the four-field body is built here.
"""

from __future__ import annotations

import httpx

from adapters.dialects.answers import body_size, route_path
from adapters.dialects.kinds import SpeechAudio, SpeechDialect
from adapters.gateway.errors import stream_error


class OpenAISpeech(SpeechDialect):
    name = "openai"

    def request_body(self, *, provider: str, model: str, text: str, voice: str, audio_type: str) -> dict:
        return {"model": model, "input": text, "voice": voice, "response_format": audio_type}

    def parse_answer(self, response: httpx.Response) -> SpeechAudio:
        path = route_path(response)
        content_type = response.headers.get("content-type", "")
        if content_type.startswith(("application/json", "text/")):
            raise stream_error(path, f"expected audio, got {body_size(response)}")
        if not response.content:
            raise stream_error(path, "the audio is empty")
        return SpeechAudio(data=response.content)


DIALECT = OpenAISpeech()
