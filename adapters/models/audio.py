"""Audio bytes as the speech adapters need them: what format a clip is, a tiny test clip, and
audio cut into pieces the plugin daemon can carry.

- `sniff_audio_format` reads the container's magic bytes (never the file name, which the SDK
  makes up), so the upload's name and content type say what the bytes are.
- `daemon_chunks`: the SDK sends each TTS chunk as one hex-encoded JSON line, and the daemon reads
  stdout lines of at most 5 MiB (adapters/message_size.py); 1 MiB of audio is 2 MiB of hex.
- `WavJoiner`: a WAV file's header states its length, so WAV segments cannot simply be
  concatenated (players stop after the first); they are sent as one file of unknown length.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterable, Iterator
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


def daemon_chunks(parts: Iterable[bytes | memoryview], size: int = DAEMON_CHUNK) -> Iterator[bytes]:
    """The parts' bytes in chunks of at most `size` (a chunk never spans two parts)."""
    for part in parts:
        for start in range(0, len(part), size):
            yield bytes(part[start : start + size])


def is_audio(content_type: str, body: bytes) -> bool:
    """Whether a downloaded answer is audio: labelled audio/*, or in a format its first bytes show."""
    return content_type.lower().startswith("audio/") or sniff_audio_format(body[:64]) is not None


_PCM_TAGS = (1, 0xFFFE)  # WAVE_FORMAT_PCM, and WAVE_FORMAT_EXTENSIBLE (its sub-format checked below)


def _pcm(segment: bytes) -> tuple[tuple[int, int, int], memoryview] | None:
    """((channels, sample width, rate), a view of the frames) of a PCM WAV, else None.

    The RIFF chunks are walked here rather than with `wave`, whose readframes() copies the frames:
    a 32 MiB piece would be held twice."""
    if len(segment) < 12 or segment[:4] != b"RIFF" or segment[8:12] != b"WAVE":
        return None
    shape, position = None, 12
    while position + 8 <= len(segment):
        name, size = segment[position : position + 4], struct.unpack_from("<I", segment, position + 4)[0]
        body = position + 8
        if name == b"fmt " and size >= 16:
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", segment, body)
            extensible_pcm = tag == 0xFFFE and size >= 40 and segment[body + 24 : body + 26] == b"\x01\x00"
            if tag not in _PCM_TAGS or (tag == 0xFFFE and not extensible_pcm) or not channels or bits % 8:
                return None
            shape = (channels, bits // 8, rate)
        elif name == b"data":
            if shape is None:
                return None
            frame = shape[0] * shape[1]
            whole = (min(len(segment), body + size) - body) // frame * frame  # a streamed size may be unknown
            return shape, memoryview(segment)[body : body + whole]
        position = body + size + (size % 2)
    return None


# A RIFF or data size a writer does not know yet: what streaming WAV writers (ffmpeg to a pipe) put
# there, and what readers take as "until the end of the file".
_UNKNOWN_SIZE = 0xFFFFFFFF


def _streaming_header(channels: int, width: int, rate: int) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * width, channels * width, 8 * width)
    return (
        b"RIFF" + struct.pack("<I", _UNKNOWN_SIZE) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + b"data" + struct.pack("<I", _UNKNOWN_SIZE)
    )  # fmt: skip


class WavJoiner:
    """WAV pieces sent one after another as ONE WAV file, each as soon as it is ready.

    A WAV header states the file's length, which is not known until the last piece exists, and
    players stop at the end of the first piece's data when headers are simply concatenated. So the
    first piece goes out under a header whose sizes say "unknown" (read to the end), and every piece
    after it as its PCM frames alone. Pieces that are not readable PCM WAV, or not of the first
    piece's channels, width and rate, go out unchanged: better the audio the gateway sent than none.
    """

    def __init__(self) -> None:
        self._shape: tuple[int, int, int] | None = None

    def piece(self, segment: bytes) -> list[bytes | memoryview]:
        """What to send for `segment`, in parts (views into it, so its frames are not copied)."""
        clip = _pcm(segment)
        if clip is None:
            return [segment]
        shape, frames = clip
        if self._shape is None:
            self._shape = shape
            return [_streaming_header(*shape), frames]
        return [frames] if shape == self._shape else [segment]
