"""Speech to text through OpenAI chat completions (`/v1/chat/completions`), for models a gateway serves only there.

Qwen3-ASR-Flash is one: Alibaba Cloud Model Studio serves it OpenAI-compatibly at
POST /compatible-mode/v1/chat/completions ("Audio file recognition (Qwen-ASR) API reference",
https://www.alibabacloud.com/help/en/model-studio/qwen-asr-api-reference, and
https://docs.qwencloud.com/api-reference/speech-recognition/qwen-asr/openai), and the gateway's chat
route reaches it. The request is one user message whose content is the audio as an `input_audio`
part holding a data URL (`data:<MIME type>;base64,<audio>`, the MIME type the model adapter sniffed
from the bytes), then the prompt as a text part when one is given; a language goes in Qwen-ASR's
own body field `asr_options.language`. The transcript is the assistant message's content, of a
chat.completion, or collected from the deltas of a stream (asked for, with `stream_options`, only
when the model is streamed).

The body is built and each answer read by the chat dialect (openai/chat.py, LiteLLM's translation).
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
from dify_plugin.errors.model import InvokeBadRequestError

from adapters.dialects.answers import SECURITY_GUARD_MODEL, route_path, unusable_answer
from adapters.dialects.kinds import Clip, Transcript, TranscriptionDialect, TranscriptionRequest
from adapters.dialects.openai.chat import DIALECT as CHAT
from adapters.dialects.openai.chat import input_audio_part, wire_params
from adapters.engine.litellm_facade import chat_request_body
from adapters.gateway.errors import error_from_event, stream_error
from adapters.gateway.limits import STREAM_TEXT_LIMIT
from adapters.gateway.sse import EventStream


def data_url(audio: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(audio).decode('ascii')}"


class ChatTranscription(TranscriptionDialect):
    name = "openai-chat"
    can_stream = True

    def request(self, *, provider: str, model: str, clip: Clip) -> TranscriptionRequest:
        _, audio, content_type = clip.upload
        content: list[dict[str, Any]] = [input_audio_part(data_url(audio, content_type))]
        if clip.prompt:
            content.append({"type": "text", "text": clip.prompt})
        messages = [{"role": "user", "content": content}]
        body = chat_request_body(
            provider=provider, model=model, messages=messages, params=wire_params({}, (), clip.stream)
        )
        if clip.language:
            body["asr_options"] = {"language": clip.language}
        return TranscriptionRequest(json=body, stream=clip.stream)

    def parse_answer(self, *, provider: str, model: str, response: httpx.Response) -> Transcript:
        path = route_path(response)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            return self._collected(response, path)
        answer = CHAT.parse_answer(response)
        text = answer.turn.content
        if answer.model == SECURITY_GUARD_MODEL:
            return Transcript(None, blocked=text or "")
        return Transcript(text or None)

    def _collected(self, response: httpx.Response, path: str) -> Transcript:
        """The transcript of a stream: its content deltas joined, up to STREAM_TEXT_LIMIT characters."""
        spoken: list[str] = []
        blocked: list[str] = []
        size = 0
        finished = counted = False
        events = EventStream(response, path)
        for number, data in enumerate(events, start=1):
            if "error" in data:
                raise error_from_event(path, data)
            with unusable_answer(path, f"event {number}"):
                chunk = CHAT.parse_chunk(data)
            counted = counted or chunk.usage is not None
            if chunk.turn is None:
                continue
            finished = finished or chunk.turn.finish_reason is not None
            piece = chunk.turn.content or ""
            (blocked if chunk.model == SECURITY_GUARD_MODEL else spoken).append(piece)
            size += len(piece)
            if size > STREAM_TEXT_LIMIT:
                response.close()
                raise InvokeBadRequestError(
                    f"The stream from {path} brought more than {STREAM_TEXT_LIMIT:,} characters of transcript, "
                    "the most the plugin keeps for one answer; the connection was closed."
                )
        if not events.done and not (finished and counted):
            # As for a chat: without [DONE], only a finish reason and then the usage mark the end.
            raise stream_error(path, "the connection closed before [DONE] and before the answer's end")
        return Transcript("".join(spoken) or None, blocked="".join(blocked) if blocked else None)


DIALECT = ChatTranscription()
