"""DashScope qwen-tts (`/api/v1/services/aigc/multimodal-generation/generation`).

LiteLLM's DashScope text-to-speech translation builds `{"model","input":{"text","voice"}}`. The
answer is JSON with `output.audio.url` (the WAV file, downloaded by the tts adapter through
adapters/gateway/download.py) or inline base64 `output.audio.data`. qwen-tts answers WAV only.
"""

from __future__ import annotations

import base64

import httpx

from adapters.dialects.answers import json_answer, required_field, route_path, unusable_answer
from adapters.dialects.kinds import SpeechAudio, SpeechDialect
from adapters.engine.litellm_facade import speech_request_body
from adapters.gateway.errors import stream_error


class DashScopeSpeech(SpeechDialect):
    name = "dashscope"
    only_audio_type = "wav"

    def request_body(self, *, provider: str, model: str, text: str, voice: str, audio_type: str) -> dict:
        return speech_request_body(provider=provider, model=model, text=text, voice=voice)

    def parse_answer(self, response: httpx.Response) -> SpeechAudio:
        path = route_path(response)
        audio = required_field(json_answer(response), "output", "audio", path=path)
        url, data = (audio.get("url"), audio.get("data")) if isinstance(audio, dict) else (None, None)
        if isinstance(url, str) and url:
            return SpeechAudio(url=url)
        if isinstance(data, str) and data:
            with unusable_answer(path):
                return SpeechAudio(data=base64.b64decode(data, validate=True))
        raise stream_error(path, "output.audio has neither a url nor data")


DIALECT = DashScopeSpeech()
