"""Translates Dify speech-to-text calls into multipart transcription requests on the gateway, in the route's dialect.

The upload carries exactly the bytes Dify handed over, named and typed after the format their magic
bytes show (adapters/models/audio.py); an unknown format, or one the model does not list, is refused
before any request. `language` and `prompt` are sent only when the model declares it takes them
(`supports_language` / `supports_prompt`) and the model credentials give a value; nothing is ever
forced. The route's dialect (adapters/dialects/openai/transcription.py) writes the form fields and
reads the transcript.
"""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import IO, Any

from dify_plugin.interfaces.model.speech2text_model import Speech2TextModel

from adapters.catalog.resolver import model_form, resolve_model
from adapters.credentials import text
from adapters.dialects.kinds import TranscriptionDialect
from adapters.dialects.registry import dialect
from adapters.gateway.transport import session_for
from adapters.message_size import oversize, text_worst_case, too_large
from adapters.models.audio import KNOWN_FORMATS, silence_wav, sniff_audio_format
from adapters.models.base import GatewayModel, bad_request, translated_by_litellm
from adapters.models.invocation_headers import own_headers
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

        upload = (f"audio.{fmt.extension}", audio, fmt.content_type)
        form = model_form(credentials, "speech2text")  # a catalog model's credentials (the provider's) have none
        wire = dialect(TranscriptionDialect, target.route.dialect)
        provider, name = target.route.litellm, target.gateway_model
        with translated_by_litellm(target):
            fields = wire.request_fields(
                provider=provider,
                model=name,
                upload=upload,
                language=_option(form, "language", info.supports_language),
                prompt=_option(form, "prompt", info.supports_prompt),
            )
        session = session_for(credentials)
        budget = session.budget("speech2text")
        headers = own_headers(session, user)
        response = session.send(
            target.route.path, files={"file": upload}, data=fields, budget=budget, own_headers=headers
        )
        with session.reading(response):
            transcript = wire.parse_answer(provider=provider, model=name, response=response)
        if (size := oversize({"result": transcript}, text_worst_case(transcript) + 64)) is not None:
            what = f"the transcript ({len(transcript):,} characters)"
            raise bad_request(target, too_large(what, size) + "; Dify takes a transcript as one message.")
        return transcript

    def validate_credentials(self, model: str, credentials: Mapping[str, Any]) -> None:
        """Transcribes 0.1 s of silence through the same route and auth the model will use, per endpoint and key."""

        def ping() -> object:
            return self._invoke(model, dict(credentials), BytesIO(silence_wav()))

        check_credentials(self.model_type.value, model, credentials, ping)
