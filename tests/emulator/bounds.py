"""Answers past the plugin's read bounds (adapters/gateway/limits.py), to test that they hold.

Every body here is generated as it is sent, so a test can ask for a gigabyte without the emulator
holding one:

- `gzip_bomb`: a gzip body that inflates to N MiB while only a few KB per 100 MiB cross the wire
  (the same compressed block repeated: after a full flush deflate output depends on nothing before);
- `bloated`: the answer followed by N MiB of spaces (valid JSON whitespace, nothing compressed);
- `endless_line`: an SSE `data:` line that grows by N MiB and never ends with a newline;
- `dripping`: the answer one byte at a time with a pause after each.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Iterable, Iterator

from .wire import BodyItem, Pause

__all__ = ["bloated", "dripping", "endless_line", "gzip_bomb", "mib_pieces"]

_MIB = 1024 * 1024
_CHECKED_MIB = 64


def mib_pieces(mib: float, fill: bytes = b" ") -> Iterator[bytes]:
    """`mib` MiB of `fill`, one MiB at a time."""
    whole, rest = divmod(int(mib * _MIB), _MIB)
    block = fill * (_MIB // len(fill))
    yield from itertools.repeat(block, whole)
    if rest:
        yield block[:rest]


def gzip_bomb(head: bytes, mib: float) -> Iterator[bytes]:
    """gzip of `head` plus `mib` whole MiB of spaces, compressed one MiB block at a time. The trailer's
    checksum is right up to _CHECKED_MIB (an answer meant to be read); past that it would cost the
    emulator a CRC over every MiB, for a trailer nothing should read."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    yield b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + deflate.compress(head) + deflate.flush(zlib.Z_FULL_FLUSH)
    spaces = b" " * _MIB
    block = deflate.compress(spaces) + deflate.flush(zlib.Z_FULL_FLUSH)
    yield from itertools.repeat(block, int(mib))
    crc = zlib.crc32(head)
    if mib <= _CHECKED_MIB:
        for _ in range(int(mib)):
            crc = zlib.crc32(spaces, crc)
    size = len(head) + int(mib) * _MIB
    yield deflate.flush(zlib.Z_FINISH) + struct.pack("<II", crc, size & 0xFFFFFFFF)


def bloated(body: bytes, mib: float) -> Iterator[bytes]:
    yield body
    yield from mib_pieces(mib)


def endless_line(mib: float) -> Iterator[bytes]:
    yield b'data: {"choices":[{"index":0,"delta":{"content":"'
    yield from mib_pieces(mib, b"a")
    yield b'"}}]}\n\n'


def dripping(items: Iterable[BodyItem], seconds: float) -> Iterator[BodyItem]:
    """Every byte of the body on its own, `seconds` apart."""
    for item in items:
        if isinstance(item, bytes):
            for index in range(len(item)):
                yield item[index : index + 1]
                yield Pause(seconds)
        else:
            yield item
