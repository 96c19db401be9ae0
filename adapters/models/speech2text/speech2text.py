"""Translates Dify speech-to-text calls into transcription requests on the gateway, in the route's dialect.

The audio sent is exactly the bytes Dify handed over, named and typed after the format their magic
bytes show (adapters/models/audio.py); an unknown format, one the model does not list, or a clip
past the model's bounds (file_upload_limit, and base64_audio_limit for a route that sends it as
base64) is refused before any request. `language` and `prompt` are sent only when the model declares
it takes them (`supports_language` / `supports_prompt`) and the model credentials give a value;
nothing is ever forced. The route's dialect builds the request: a multipart upload
(adapters/dialects/openai/transcription.py) or, for models served only on the chat route, an
`input_audio` chat message (adapters/dialects/openai/chat_transcription.py), streamed for a
`stream_only` model; it reads the transcript. A transcript Higress' content security blocked is an
error, never the deny text as if it had been said.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from io import BytesIO
from typing import IO, Any

import httpx
from dify_plugin.interfaces.model.speech2text_model import Speech2TextModel

from adapters.catalog.loader import CatalogModel
from adapters.catalog.resolver import model_form, resolve_model
from adapters.credentials import text
from adapters.dialects.kinds import Clip, Transcript, TranscriptionDialect, TranscriptionRequest
from adapters.dialects.registry import dialect
from adapters.gateway.body import finished
from adapters.gateway.errors import stream_error
from adapters.gateway.transport import GatewaySession, session_for
from adapters.message_size import oversize, text_worst_case, too_large
from adapters.models.audio import KNOWN_FORMATS, silence_wav, sniff_audio_format
from adapters.models.base import GatewayModel, bad_request, translated_by_litellm
from adapters.models.invocation_headers import own_headers
from adapters.models.llm.answer import deny_text
from adapters.models.validation import check_credentials

_MEGABYTE = 1024 * 1024


def _read_all(file: IO[bytes]) -> bytes:
    if file.seekable():
        file.seek(0)
    return file.read()


def _option(form: Mapping[str, Any], name: str, supported: bool) -> str | None:
    """A model form's value, sent only to a model that declares it takes it."""
    value = text(form, name)
    return value if supported and value else None


class AIGatewaySpeech2TextModel(GatewayModel, Speech2TextModel):
    def _invoke(self, model: str, credentials: dict, file: IO[bytes], user: str | None = None) -> str:
        target, transcript = self._transcribe(model, credentials, file, user)
        if transcript.text is None:
            raise stream_error(target.route.path, "the answer has no transcript (its message content is empty)")
        return transcript.text

    def _transcribe(
        self, model: str, credentials: dict, file: IO[bytes], user: str | None
    ) -> tuple[CatalogModel, Transcript]:
        """The model and its transcript of `file`, which may be none (`text` None)."""
        target = resolve_model("speech2text", model, credentials)
        info = target.info
        audio = _read_all(file)
        if not audio:
            raise bad_request(target, "the audio file is empty.")
        fmt = sniff_audio_format(audio[:64])
        if fmt is None:
            raise bad_request(target, f"the audio is not in a format this plugin recognises ({KNOWN_FORMATS}).")
        if info.supported_file_extensions and fmt.extension not in info.supported_file_extensions:
            accepted = ", ".join(info.supported_file_extensions)
            raise bad_request(target, f"{fmt.extension} audio is not accepted by this model (it takes {accepted}).")
        if len(audio) > info.file_upload_limit * _MEGABYTE:
            size = len(audio) / _MEGABYTE
            raise bad_request(
                target, f"the audio is {size:.1f} MB; the model takes at most {info.file_upload_limit} MB."
            )
        encoded = 4 * math.ceil(len(audio) / 3)
        if info.base64_audio_limit is not None and encoded > info.base64_audio_limit * _MEGABYTE:
            raise bad_request(
                target,
                f"the audio is {encoded / _MEGABYTE:.1f} MB as base64 ({len(audio) / _MEGABYTE:.1f} MB of "
                f"{fmt.extension}); the model takes at most {info.base64_audio_limit} MB of base64 audio.",
            )

        upload = (f"audio.{fmt.extension}", audio, fmt.content_type)
        form = model_form(credentials, "speech2text")  # a catalog model's credentials (the provider's) have none
        wire = dialect(TranscriptionDialect, target.route.dialect)
        provider, name = target.route.litellm, target.gateway_model
        with translated_by_litellm(target):
            clip = Clip(
                upload,
                language=_option(form, "language", info.supports_language),
                prompt=_option(form, "prompt", info.supports_prompt),
                stream=info.stream_only,
            )
            request = wire.request(provider=provider, model=name, clip=clip)
        session = session_for(credentials)
        transcript = self._send(target, wire, session, request, upload, user)
        if transcript.blocked is not None:
            raise bad_request(
                target, f"AI Gateway content security blocked the transcript: {deny_text(transcript.blocked)}"
            )
        text = transcript.text or ""
        if (size := oversize({"result": text}, text_worst_case(text) + 64)) is not None:
            what = f"the transcript ({len(text):,} characters)"
            raise bad_request(target, too_large(what, size) + "; Dify takes a transcript as one message.")
        return target, transcript

    def _send(
        self,
        target: CatalogModel,
        wire: TranscriptionDialect,
        session: GatewaySession,
        request: TranscriptionRequest,
        upload: tuple[str, bytes, str],
        user: str | None,
    ) -> Transcript:
        """Sends the request and reads the transcript; a streamed answer is read to its end, then closed."""
        budget = session.budget("speech2text")
        headers = own_headers(session, user)
        path, provider, name = target.route.path, target.route.litellm, target.gateway_model
        if request.json is None:
            files = {"file": upload}
            response = session.send(path, files=files, data=request.form, budget=budget, own_headers=headers)
        else:
            response = session.send(path, json=request.json, stream=request.stream, budget=budget, own_headers=headers)
        try:
            with session.reporting(response.request), session.reading(response):
                if request.stream and not response.headers.get("content-type", "").startswith("text/event-stream"):
                    # A stream request answered with plain JSON (some gateway plugins do): read it whole.
                    response = finished(response, budget.answer_limit, budget.answers)
                try:
                    return wire.parse_answer(provider=provider, model=name, response=response)
                except httpx.HTTPError as exc:  # the stream broke while it was read
                    raise session.transport_error(response.request, exc) from exc
        finally:
            response.close()

    def validate_credentials(self, model: str, credentials: Mapping[str, Any]) -> None:
        """Transcribes 0.1 s of silence through the same route and auth the model will use, per endpoint and key;
        an answer without a transcript passes (a chat-served ASR model answers silence with none)."""

        def ping() -> object:
            return self._transcribe(model, dict(credentials), BytesIO(silence_wav()), None)

        check_credentials(self.model_type.value, model, credentials, ping)
