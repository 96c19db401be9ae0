"""A byte-exact multipart/form-data parser.

The stdlib email parser normalises line endings and may re-encode parts, which would break
the "record the exact file bytes" guarantee, so the body is split by hand on the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

__all__ = ["MultipartError", "MultipartFile", "parse_form", "parse_parts"]


class MultipartError(ValueError):
    """The body is not valid multipart/form-data."""


@dataclass(frozen=True, slots=True)
class MultipartFile:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class _Part:
    name: str
    filename: str | None
    content_type: str
    data: bytes


def _header_params(name: str, value: str) -> Message:
    msg = Message()
    msg[name] = value
    return msg


def boundary_of(content_type: str) -> str:
    msg = _header_params("content-type", content_type)
    if msg.get_content_type() != "multipart/form-data":
        raise MultipartError(f"expected multipart/form-data, got {content_type!r}")
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MultipartError("multipart body without a boundary parameter")
    return boundary


def parse_parts(content_type: str, body: bytes) -> list[_Part]:
    delimiter = b"\r\n--" + boundary_of(content_type).encode("latin-1")
    # Prefix CRLF so the first delimiter (which has none before it) splits like the rest.
    sections = (b"\r\n" + body).split(delimiter)
    if len(sections) < 2:
        raise MultipartError("boundary not found in body")
    parts: list[_Part] = []
    for section in sections[1:]:
        if section.startswith(b"--"):
            return parts  # close delimiter: anything after it is epilogue
        line_end = section.find(b"\r\n")  # rest of the delimiter line (transport padding)
        head, sep, data = section[line_end + 2 :].partition(b"\r\n\r\n")
        if line_end < 0 or not sep:
            raise MultipartError("part without a header block")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in head.decode("utf-8", "replace").split("\r\n"))
            if k.strip()
        }
        disposition = _header_params("content-disposition", headers.get("content-disposition", ""))
        name = disposition.get_param("name", header="content-disposition")
        filename = disposition.get_param("filename", header="content-disposition")
        if not isinstance(name, str):
            raise MultipartError("part without a name")
        parts.append(
            _Part(
                name=name,
                filename=filename if isinstance(filename, str) else None,
                content_type=headers.get("content-type", "text/plain"),
                data=data,
            )
        )
    raise MultipartError("multipart body without the closing delimiter")


def parse_form(content_type: str, body: bytes) -> dict[str, str | MultipartFile]:
    """name -> field text, or MultipartFile for parts that carry a filename (first one wins)."""
    form: dict[str, str | MultipartFile] = {}
    for part in parse_parts(content_type, body):
        if part.name in form:
            continue
        if part.filename is not None:
            form[part.name] = MultipartFile(part.filename, part.content_type, part.data)
        else:
            form[part.name] = part.data.decode("utf-8", "replace")
    return form
