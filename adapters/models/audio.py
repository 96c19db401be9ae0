"""Audio bytes as the speech adapters need them: what format a clip is, a tiny test clip, and
audio cut into pieces the plugin daemon can carry.

- `sniff_audio_format` reads the container's magic bytes (never the file name, which the SDK
  makes up), so the upload's name and content type say what the bytes are.
- `daemon_chunks`: the SDK sends each TTS chunk as one hex-encoded JSON line, and the daemon reads
  stdout lines of at most 5 MiB (adapters/message_size.py); 1 MiB of audio is 2 MiB of hex.
- `join_wav`: a WAV file's header states its length, so WAV segments cannot simply be
  concatenated (players stop after the first); their frames are put under one header instead.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from adapters.message_size import AUDIO_BYTES_PER_CHUNK as DAEMON_CHUNK


@dataclass(frozen=True, slots=True)
class AudioFormat:
    extension: str
    content_type: str


WAV = AudioFormat("wav", "audio/wav")
FLAC = AudioFormat("flac", "audio/flac")
OGG = AudioFormat("ogg", "audio/ogg")
M4A = AudioFormat("m4a", "audio/mp4")
MP4 = AudioFormat("mp4", "audio/mp4")
WEBM = AudioFormat("webm", "audio/webm")
MP3 = AudioFormat("mp3", "audio/mpeg")
KNOWN_FORMATS = "wav, flac, ogg, m4a, mp4, webm, mp3"


def _is_mp3(head: bytes) -> bool:
    if head.startswith(b"ID3"):
        return True
    # An MPEG audio frame header: 11 sync bits, a version that is not the reserved 01, layer III
    # (AAC's ADTS header has the same sync bits but layer 00).
    return (
        len(head) >= 2
        and head[0] == 0xFF
        and head[1] & 0xE0 == 0xE0
        and head[1] & 0x18 != 0x08
        and head[1] & 0x06 == 0x02
    )


def sniff_audio_format(head: bytes) -> AudioFormat | None:
    """The format of a clip from its first bytes (64 are enough), or None if it is none we know."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head.startswith(b"fLaC"):
        return FLAC
    if head.startswith(b"OggS"):
        return OGG
    if head[4:8] == b"ftyp":
        return M4A if head[8:12] == b"M4A " else MP4
    if head.startswith(b"\x1a\x45\xdf\xa3") and b"webm" in head[:64]:
        return WEBM  # EBML header with DocType "webm" (a Matroska .mkv is not accepted)
    if _is_mp3(head):
        return MP3
    return None


def silence_wav(seconds: float = 0.1, rate: int = 16000) -> bytes:
    """A mono 16-bit PCM WAV of silence: the smallest real clip a transcription route accepts."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def daemon_chunks(audio: bytes, size: int = DAEMON_CHUNK) -> Iterator[bytes]:
    for start in range(0, len(audio), size):
        yield audio[start : start + size]


def _pcm(segment: bytes) -> tuple[tuple[int, int, int], bytes] | None:
    """((channels, sample width, rate), frames) of a readable WAV, else None."""
    try:
        with wave.open(io.BytesIO(segment), "rb") as clip:
            return (clip.getnchannels(), clip.getsampwidth(), clip.getframerate()), clip.readframes(clip.getnframes())
    except (wave.Error, EOFError):
        return None


def join_wav(segments: Sequence[bytes]) -> bytes:
    """One WAV holding every segment's frames; a single segment is returned as it is.

    Segments that are not all readable PCM WAV with the same channels, width and rate are
    concatenated unchanged: better the audio the gateway sent than none.
    """
    if len(segments) == 1:
        return segments[0]
    clips = [clip for clip in map(_pcm, segments) if clip is not None]
    params = {shape for shape, _ in clips}
    if len(clips) != len(segments) or len(params) != 1:
        return b"".join(segments)
    channels, width, rate = params.pop()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(b"".join(frames for _, frames in clips))
    return buffer.getvalue()
