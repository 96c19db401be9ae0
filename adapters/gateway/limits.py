"""Every bound on what the plugin reads from the gateway, in one place (README, "Limits").

One plugin process serves every workspace of a Dify install, and the manifest declares 512 MiB for
it, so no answer may decide how much memory or time the process spends. Each number is sized for
the largest answer a legitimate model of that type sends, with room to spare; an answer past it is
cut (the connection closed) with an error naming the bound. Sizes count DECODED bytes: a gzip answer
of a few MB on the wire may inflate to gigabytes.

    bound                          default     the largest legitimate answer it must let through
    JSON answer, llm               16 MiB      128k output tokens of CJK text written as \\uXXXX escapes
                                               (~1.2 MB) plus as much reasoning and tool-call arguments
    JSON answer, text-embedding    16 MiB      a batch whose result fits Dify's 5 MiB stdout line
                                               (what max_chunks is sized for), floats written longer
    JSON answer, rerank            16 MiB      500 documents echoed back whole (return_documents)
    JSON answer, speech2text       16 MiB      a verbose transcript of a 25 MB upload with word timings
    audio of one TTS piece         32 MiB      4,096 characters spoken as 24 kHz 16-bit WAV (~15 MB);
                                               the same bound applies to a downloaded audio file
    audio one TTS invocation holds 64 MiB      the pieces synthesized ahead of the one being sent wait
    (read, not yet sent)                       past it, the next piece to send never does: at most
                                               64 MiB + one piece (32 MiB) whatever the pieces' sizes
    error body                     64 KiB      the gateway's error words (an HTML page is cut, not read)
    one SSE event (its lines)      16 Mi chars a backend that sends a whole answer or tool call as one
                                               event: tool-call arguments are JSON inside JSON, so
                                               their text comes escaped twice (a tool call as large as
                                               Dify's 5 MiB message takes ~10 Mi characters)
    text a stream accumulates      16 Mi chars answer, reasoning and tool-call arguments of one stream
                                               (a transcript streamed through chat), the same as a
                                               blocking answer

Time: an invocation ends by its deadline (`Timeouts.invocation`, AIGW_INVOCATION_TIMEOUT, 540 s by
default, below the 600 s Dify's plugin daemon allows one: PLUGIN_MAX_EXECUTION_TIMEOUT), and once a
body has started, the read timeout restarts only when PROGRESS_BYTES more have arrived, so a body
that drips a byte at a time is cut like a silent one instead of being relayed for ever.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

KIB: Final = 1024
MIB: Final = 1024 * KIB

ANSWER_LIMITS: Final = MappingProxyType(
    {
        "llm": 16 * MIB,
        "text-embedding": 16 * MIB,
        "rerank": 16 * MIB,
        "speech2text": 16 * MIB,
        "tts": 32 * MIB,
    }
)
DOWNLOAD_LIMIT: Final = ANSWER_LIMITS["tts"]
TTS_HELD_AUDIO_LIMIT: Final = 64 * MIB
ERROR_BODY_LIMIT: Final = 64 * KIB
EVENT_LIMIT: Final = 16 * MIB
STREAM_TEXT_LIMIT: Final = 16 * MIB

INVOCATION_TIMEOUT_VARIABLE: Final = "AIGW_INVOCATION_TIMEOUT"
DEFAULT_INVOCATION_TIMEOUT: Final = 540.0
PROGRESS_BYTES: Final = 256


def describe(size: int) -> str:
    """A size as the docs write it: '16 MiB', '64 KiB', '300 bytes'."""
    for unit, name in ((MIB, "MiB"), (KIB, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"
