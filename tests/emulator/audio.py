"""Audio routes: OpenAI transcription/translation (multipart in), speech (raw audio out) and
DashScope qwen-tts (JSON with an audio URL served by this emulator under /_files/).

Generated audio is tiny but well-formed at the container level, and its payload is the
UTF-8 input text, so tests can find the text in the bytes:
- wav: RIFF/WAVE, PCM 16-bit mono 16 kHz, data chunk = the text (padded to even length);
- mp3: an MPEG-1 Layer III frame header (128 kbps, 44.1 kHz) followed by "EMU-TTS:" + text,
  zero-padded to at least one frame; other formats: their magic bytes + "EMU-TTS:" + text.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator

from . import hostile
from .bounds import mib_pieces
from .context import Context
from .multipart import MultipartError, MultipartFile, parse_form
from .responses import dashscope_error, json_response, openai_error, text_response
from .wire import Response
from .words import count_words

__all__ = ["dashscope_tts", "make_wav", "silent_wav", "speech", "transcription", "translation"]

_WAV_RATE = 16000
_MP3_HEADER = b"\xff\xfb\x90\x64"  # sync, MPEG-1 Layer III, 128 kbps, 44.1 kHz, joint stereo
_MP3_FRAME = 417  # bytes per frame at 128 kbps / 44.1 kHz without padding
_MARKER = b"EMU-TTS:"
_FORMATS: dict[str, tuple[str, bytes]] = {
    "mp3": ("audio/mpeg", _MP3_HEADER),
    "opus": ("audio/opus", b"OggS\x00\x02"),
    "aac": ("audio/aac", b"\xff\xf1\x50\x80"),
    "flac": ("audio/flac", b"fLaC"),
    "wav": ("audio/wav", b""),
    "pcm": ("audio/pcm", b""),
}


def make_wav(payload: bytes) -> bytes:
    """A valid PCM WAV file whose sample data is `payload` (zero-padded to whole samples)."""
    data = payload + b"\x00" * (len(payload) % 2)
    fmt = struct.pack("<HHIIHH", 1, 1, _WAV_RATE, _WAV_RATE * 2, 2, 16)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def silent_wav(mib: int) -> tuple[int, Iterator[bytes]]:
    """(size, body) of a WAV of `mib` MiB in all, its header included: silence, generated as it is sent."""
    size = mib * 1024 * 1024
    header = bytearray(make_wav(b""))
    struct.pack_into("<I", header, 4, size - 8)
    struct.pack_into("<I", header, len(header) - 4, size - len(header))

    def body() -> Iterator[bytes]:
        yield bytes(header)
        yield from mib_pieces((size - len(header)) / (1024 * 1024), b"\x00")

    return size, body()


def _wav_duration(data: bytes) -> float:
    """Seconds of a PCM WAV, 0.0 for anything else."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0.0
    byte_rate, pos = 0, 12
    while pos + 8 <= len(data):
        chunk_id, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk_id == b"fmt " and size >= 16:
            byte_rate = struct.unpack("<I", data[pos + 16 : pos + 20])[0]
        elif chunk_id == b"data" and byte_rate:
            return round(min(size, len(data) - pos - 8) / byte_rate, 3)
        pos += 8 + size + (size % 2)
    return 0.0


def encode_audio(text: str, fmt: str) -> tuple[str, bytes]:
    ctype, magic = _FORMATS[fmt]
    raw = text.encode("utf-8")
    if fmt == "wav":
        return ctype, make_wav(raw)
    if fmt == "pcm":
        return ctype, raw + b"\x00" * (len(raw) % 2)
    body = magic + _MARKER + raw
    if fmt == "mp3" and len(body) < _MP3_FRAME:
        body += b"\x00" * (_MP3_FRAME - len(body))
    return ctype, body


def _audio_text(ctx: Context, task: str) -> Response:
    ctype = ctx.request.headers.get("content-type", "")
    try:
        form = parse_form(ctype, ctx.request.body)
    except MultipartError as exc:
        return openai_error(400, f"Could not parse multipart form: {exc}", "invalid_request_error")
    upload = form.get("file")
    if not isinstance(upload, MultipartFile):
        return openai_error(400, "'file' is a required multipart file field", "invalid_request_error", param="file")
    if not form.get("model"):
        return openai_error(400, "'model' is a required field", "invalid_request_error", param="model")
    digest = hashlib.sha256(upload.data).hexdigest()[:12]
    text = f"{task} of {upload.filename}: {len(upload.data)} bytes, sha256 {digest}"
    if ctx.faults.big is not None:
        text = hostile.big_text(ctx.faults.big)
    response_format = str(form.get("response_format") or "json")
    if response_format == "text":
        return text_response(text + "\n", 200, ctype="text/plain; charset=utf-8")
    if response_format in ("srt", "vtt"):
        cue = "00:00:00,000 --> 00:00:01,000" if response_format == "srt" else "00:00:00.000 --> 00:00:01.000"
        head = "1\n" if response_format == "srt" else "WEBVTT\n\n"
        return text_response(f"{head}{cue}\n{text}\n\n", 200, ctype="text/plain; charset=utf-8")
    if response_format == "verbose_json":
        language = str(form.get("language") or "en")
        task_name = "transcribe" if task == "transcript" else "translate"
        body = {
            "task": task_name,
            "language": language,
            "duration": _wav_duration(upload.data),
            "text": text,
            "segments": [],
        }
        return json_response(body)
    if response_format != "json":
        return openai_error(400, f"Unsupported response_format {response_format!r}", "invalid_request_error")
    return json_response({"text": text})


def transcription(ctx: Context) -> Response:
    return _audio_text(ctx, "transcript")


def translation(ctx: Context) -> Response:
    return _audio_text(ctx, "translation")


def speech(ctx: Context) -> Response:
    body = ctx.json_object()
    if body is None:
        return openai_error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
    text, voice, fmt = body.get("input"), body.get("voice"), body.get("response_format", "mp3")
    if not isinstance(text, str) or not text:
        return openai_error(400, "'input' must be a non-empty string", "invalid_request_error", param="input")
    if not voice:
        return openai_error(400, "'voice' is a required property", "invalid_request_error", param="voice")
    if fmt not in _FORMATS:
        return openai_error(
            400, f"Unsupported response_format {fmt!r}", "invalid_request_error", param="response_format"
        )
    ctype, audio = encode_audio(text, fmt)
    return Response(200, [("Content-Type", ctype)], audio)


def dashscope_tts(ctx: Context) -> Response:
    """qwen-tts on multimodal-generation: JSON with an audio URL; the audio is a WAV (with `audio-MIB`,
    one of MIB MiB of silence)."""
    body = ctx.json_object()
    request_id = ctx.request_id()
    payload = body.get("input") if body is not None else None
    text = payload.get("text") if isinstance(payload, dict) else None
    if not isinstance(text, str) or not text:
        return dashscope_error(
            400, "InvalidParameter", "input.text is required (only qwen-tts is emulated here).", request_id
        )
    wav = make_wav(text.encode("utf-8"))
    file_name = f"silence-{ctx.faults.audio_mib}" if ctx.faults.audio_mib else ctx.store_file(wav)
    audio = {
        "url": f"{ctx.request.base_url}/_files/{file_name}.wav",
        "id": f"audio_{file_name}",
        "expires_at": ctx.created + 86400,
    }
    usage = {"characters": len(text), "input_tokens": count_words(text), "output_tokens": len(wav) // 2}
    return json_response(
        {"output": {"finish_reason": "stop", "audio": audio}, "usage": usage, "request_id": request_id}
    )
