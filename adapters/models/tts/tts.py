"""Translates Dify text-to-speech calls into speech requests on the gateway's routes, streaming the audio back.

Long text is split at sentence ends into pieces of at most the model's `word_limit` characters,
synthesized up to `max_workers` at a time and delivered in order, each as soon as it and the pieces
before it are ready: at most `max_workers` pieces are synthesized ahead of the one being sent, and
they wait while the invocation holds more than TTS_HELD_AUDIO_LIMIT of audio not yet sent
(models/tts/held_audio.py), so memory holds a bounded amount of audio whatever the text's length
and the pieces' sizes. Audio goes to Dify in chunks of at most 1 MiB
(the daemon's 5 MiB line limit, with the SDK's hex encoding doubling each chunk). Dify plays or
saves the concatenation of the chunks, so WAV pieces are sent as one WAV file (models/audio.py,
WavJoiner); MP3 and the other formats concatenate as they are.
The route's dialect (adapters/dialects/) writes the body and reads the answer; audio the gateway
leaves at a URL is downloaded by adapters/gateway/download.py.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import deque
from collections.abc import Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from dify_plugin.interfaces.model.tts_model import TTSModel

from adapters.catalog.loader import CatalogModel
from adapters.catalog.resolver import resolve_model
from adapters.dialects.kinds import SpeechDialect
from adapters.dialects.registry import dialect
from adapters.gateway import download
from adapters.gateway.body import Budget
from adapters.gateway.limits import TTS_HELD_AUDIO_LIMIT
from adapters.gateway.transport import Answer, GatewaySession, session_for
from adapters.models.audio import WavJoiner, daemon_chunks, is_audio
from adapters.models.base import GatewayModel, bad_request, translated_by_litellm
from adapters.models.invocation_headers import own_headers
from adapters.models.tts.held_audio import HeldAudio
from adapters.models.validation import check_credentials

# Sentence ends in Latin and CJK text, and line breaks.
_SENTENCE_END = r"[。．.!?！？;；…\n]"


def pick_voice(model: CatalogModel, requested: str | None) -> str:
    """The requested voice if the model has it, else the model's default voice."""
    known = [v.mode for v in model.info.voices]
    if requested and (not known or requested in known):
        return requested
    fallback = model.info.default_voice or (known[0] if known else None)
    if not fallback:
        raise bad_request(model, "no voice was chosen and the model declares none.")
    return fallback


class AIGatewayText2SpeechModel(GatewayModel, TTSModel):
    def _invoke(
        self,
        model: str,
        tenant_id: str,
        credentials: dict,
        content_text: str,
        voice: str,
        user: str | None = None,
    ) -> Generator[bytes, None, None]:
        target = resolve_model("tts", model, credentials)
        limit = target.info.word_limit
        pieces = [
            piece.strip()
            for piece in self._split_text_into_sentences(content_text or "", max_length=limit, pattern=_SENTENCE_END)
            if piece.strip()
        ]
        if not pieces:
            raise bad_request(target, "there is no text to speak.")
        chosen = pick_voice(target, voice)
        session = session_for(credentials)
        # Nothing is synthesized before Dify reads the first chunk: the pieces' generator starts then.
        audios = self._synthesize_in_order(
            target, session, session.budget("tts"), pieces, chosen, own_headers(session, user)
        )
        return self._stream(session, audios, joined=len(pieces) > 1)

    @staticmethod
    def _stream(session: GatewaySession, audios: Iterator[bytes], *, joined: bool) -> Generator[bytes, None, None]:
        # The SDK relays this generator without mapping its errors, so they are reported here.
        with session.reporting():
            joiner = WavJoiner() if joined else None
            for audio in audios:
                parts = joiner.piece(audio) if joiner else [audio]
                # No name may keep a sent piece alive while the next is awaited: its bytes were given
                # back to the budget.
                del audio
                yield from daemon_chunks(parts)
                del parts

    @staticmethod
    def _synthesize_in_order(
        target: CatalogModel,
        session: GatewaySession,
        budget: Budget,
        pieces: list[str],
        voice: str,
        headers: Mapping[str, str],
    ) -> Iterator[bytes]:
        wire = dialect(SpeechDialect, target.route.dialect)
        provider, name, audio_type = target.route.litellm, target.gateway_model, target.info.audio_type

        held = HeldAudio(TTS_HELD_AUDIO_LIMIT)

        def synthesize(index: int, text: str) -> bytes:
            budget_of_piece = dataclasses.replace(budget, hold=held.hold_for(index))
            with translated_by_litellm(target):
                body = wire.request_body(provider=provider, model=name, text=text, voice=voice, audio_type=audio_type)
            response = session.send(
                target.route.path, json=body, answer=Answer.SPEECH, budget=budget_of_piece, own_headers=headers
            )
            with session.reading(response):
                audio = wire.parse_answer(response)
            if audio.url is None:
                return audio.data
            path = response.request.url.path
            return download.fetch(
                session, audio.url, what="the audio", route_path=path, budget=budget_of_piece, wanted=is_audio
            )

        workers = min(target.info.max_workers, len(pieces))
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aigw-tts") if workers > 1 else None
        texts = enumerate(pieces)
        ahead: deque[Future[bytes]] = deque()

        def start_next() -> None:
            if (numbered := next(texts, None)) is not None:
                ahead.append(pool.submit(synthesize, *numbered) if pool else _done(synthesize(*numbered)))

        for _ in range(workers):
            start_next()
        try:
            for index in itertools.count():
                if not ahead:
                    return
                audio = ahead.popleft().result()
                if pool:
                    start_next()  # the window stays full while this piece is sent
                yield audio
                del audio
                held.sent(index)
                if not pool:
                    start_next()  # one at a time: the next is synthesized once this one is sent
        finally:
            # A failed piece or an abandoned stream leaves nothing running or waiting behind it.
            held.end()
            if pool:
                pool.shutdown(wait=False, cancel_futures=True)

    def validate_credentials(self, model: str, credentials: Mapping[str, Any]) -> None:
        """Synthesizes one short word through the same route and auth the model will use, per endpoint and key."""

        def ping() -> object:
            return list(self._invoke(model, "", dict(credentials), "Hello.", ""))

        check_credentials(self.model_type.value, model, credentials, ping)


def _done(audio: bytes) -> Future[bytes]:
    """A piece synthesized in place (one worker): as the pool would hand it over."""
    future: Future[bytes] = Future()
    future.set_result(audio)
    return future
