"""Server side of the X-Ca-* HMAC scheme, ported from Higress `wasm-cpp/extensions/hmac_auth`.

Its README_EN.md in alibaba/higress describes the scheme. The verifier rebuilds the string-to-sign only from
what arrived: the request line's method and raw target, the received header values and
the received body bytes. It works on bytes throughout, because the path and header octets
are signed as sent and decoded query octets need not be valid UTF-8.

Check order follows the plugin's two phases:
  headers phase: X-Ca-Key known? -> (non-form only) signature present, date window, signature
  body phase:    Content-MD5 against the body -> (form only) signature incl. form params
so a tampered JSON body with a still-valid header signature fails on Content-MD5.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .denial import Denial
from .wire import Headers, Request, to_wire_bytes

__all__ = [
    "HmacCredential",
    "HmacVerifier",
    "parse_http_date",
    "string_to_sign",
    "string_to_sign_text",
]

# Signed positionally after the method; also excluded from the X-Ca-Signature-Headers block.
_FIXED = ("accept", "content-md5", "content-type", "date")
_EXCLUDED = frozenset({"x-ca-signature", "x-ca-signature-headers", ":method", *_FIXED})
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
MAX_BODY_BYTES = 32 * 1024 * 1024  # Higress buffers at most this much to check Content-MD5
_MILLIS_MIN_LENGTH = 13  # X-Ca-Timestamp with 13+ characters is milliseconds


@dataclass(frozen=True, slots=True)
class HmacCredential:
    consumer: str
    secret: str


def _header_bytes(headers: Headers, name: str) -> bytes:
    # Envoy returns "" for a missing header; repeated headers are joined with ",".
    return to_wire_bytes(",".join(headers.get_list(name)))


def _hex_value(octet: int) -> int:
    # Higress does no validation: non-hex characters still go through this arithmetic.
    if 0x30 <= octet <= 0x39:
        return octet - 0x30
    if 0x61 <= octet <= 0x7A:
        octet -= 0x20  # ascii_toupper
    return octet - 0x41 + 10


def percent_decode(data: bytes) -> bytes:
    """Higress PercentEncoding::decode: %XX only (no '+' to space), no validation."""
    out = bytearray()
    i, size = 0, len(data)
    while i < size:
        octet = data[i]
        if octet == 0x25 and i + 2 < size:
            octet = (_hex_value(data[i + 1]) * 16 + _hex_value(data[i + 2])) & 0xFF
            i += 2
        out.append(octet)
        i += 1
    return bytes(out)


def parse_params(data: bytes) -> dict[bytes, bytes]:
    """Higress parseParameters(decode=true): split on '&', first value of a key wins.

    A parameter without '=' keeps its name undecoded and gets an empty value, as in Higress.
    """
    params: dict[bytes, bytes] = {}
    for item in data.split(b"&") if data else []:
        name, eq, value = item.partition(b"=")
        if eq:
            params.setdefault(percent_decode(name), percent_decode(value))
        else:
            params.setdefault(item, b"")
    return params


def string_to_sign(method: str, target: str, headers: Headers, form_body: bytes | None = None) -> bytes:
    """Rebuild the string-to-sign exactly as the Higress verifier does.

    target: raw request-target (path incl. base path, then optional ?query), undecoded.
    form_body: the received body when Content-Type is x-www-form-urlencoded, else None.
    """
    sts = bytearray(to_wire_bytes(method) + b"\n")
    for name in _FIXED:
        sts += _header_bytes(headers, name) + b"\n"
    signed: list[str] = []
    for name in headers.get("x-ca-signature-headers", "").split(","):
        lowered = name.translate(_ASCII_LOWER)  # no strip(): " x-ca-nonce" stays a different name
        if name and lowered not in _EXCLUDED:
            signed.append(lowered)
    for name in sorted(signed, key=to_wire_bytes):
        sts += to_wire_bytes(name) + b":" + _header_bytes(headers, name) + b"\n"

    raw = to_wire_bytes(target)
    path, has_query, query = raw.partition(b"?")
    params = parse_params(query) if has_query else {}
    for key, value in parse_params(form_body or b"").items():
        params.setdefault(key, value)  # query values win over form values
    sts += path
    if params:
        sts += b"?" + b"&".join(k + b"=" + params[k] for k in sorted(params))
    return bytes(sts)


def string_to_sign_text(method: str, target: str, headers: Headers | Mapping[str, str], body: bytes = b"") -> str:
    """Convenience for tests: the string-to-sign as text (form params taken from `body`)."""
    hdrs = headers if isinstance(headers, Headers) else Headers(headers)
    form = body if _is_form(hdrs) else None
    return string_to_sign(method, target, hdrs, form).decode("utf-8", "surrogateescape")


def _is_form(headers: Headers) -> bool:
    return "application/x-www-form-urlencoded" in headers.get("content-type", "").lower()


_WEEKDAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*"
_MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)
}
_MONTH = "(" + "|".join(_MONTHS) + ")"
_HMS = r"(\d{1,2}):(\d{1,2}):(\d{1,2})"
# The four formats Higress httpTime() accepts (absl::ParseTime tolerates extra whitespace).
_RFC1123 = re.compile(rf"\s*{_WEEKDAY},\s*(\d{{1,2}})\s+{_MONTH}\s+(\d{{4}})\s+{_HMS}\s+GMT(?:\+00:00)?\s*")
_RFC850 = re.compile(rf"\s*{_WEEKDAY},\s*(\d{{1,2}})-{_MONTH}-(\d{{2}})\s+{_HMS}\s+GMT\s*")
_ASCTIME = re.compile(rf"\s*{_WEEKDAY}\s+{_MONTH}\s+(\d{{1,2}})\s+{_HMS}\s+(\d{{4}})\s*")
_TIMESTAMP = re.compile(r"\s*[+-]?\d{1,19}\s*")


def _epoch(year: int, month: str, day: str, hh: str, mm: str, ss: str) -> float | None:
    fields = (year, _MONTHS[month], int(day), int(hh), int(mm), int(ss))
    if not (1 <= fields[2] <= 31 and fields[3] <= 23 and fields[4] <= 59 and fields[5] <= 60):
        return None
    return float(calendar.timegm((*fields, 0, 0, 0)))


def parse_http_date(value: str) -> float | None:
    """Epoch seconds for an RFC 1123 / RFC 850 / asctime date, else None (-> Invalid Date)."""
    if m := _RFC1123.fullmatch(value):
        day, month, year, hh, mm, ss = m.groups()
        return _epoch(int(year), month, day, hh, mm, ss)
    if m := _RFC850.fullmatch(value):
        day, month, yy, hh, mm, ss = m.groups()
        year = int(yy) + (1900 if int(yy) >= 69 else 2000)  # POSIX %y pivot
        return _epoch(year, month, day, hh, mm, ss)
    if m := _ASCTIME.fullmatch(value):
        month, day, hh, mm, ss, year = m.groups()
        return _epoch(int(year), month, day, hh, mm, ss)
    return None


class HmacVerifier:
    """Verifies X-Ca-* signed requests against a key -> (consumer, secret) table.

    date_offset: allowed clock skew in seconds (Higress `date_offset`); None or 0 turns the
    Date / X-Ca-Timestamp check off, which is the Higress default.
    """

    def __init__(
        self,
        credentials: Mapping[str, HmacCredential],
        *,
        date_offset: float | None,
        clock: Callable[[], float],
    ) -> None:
        self._credentials = dict(credentials)
        self._date_offset = date_offset
        self._clock = clock

    def verify(self, request: Request) -> str | Denial:
        """The consumer name, or the Denial Higress would send."""
        headers = request.headers
        credential = self._credentials.get(headers.get("x-ca-key", ""))
        if credential is None:  # empty and unknown keys get the same reply
            return Denial(401, "Invalid Key")
        is_form = _is_form(headers)
        if not is_form and (denial := self._check_signature(request, credential, None)):
            return denial

        body_md5 = headers.get("content-md5", "")
        # Envoy runs the body phase only when a body arrived (or a chunked one, possibly empty).
        if (body_md5 or is_form) and (request.body or request.chunked):
            if len(request.body) > MAX_BODY_BYTES:
                return Denial(413, "Request Body Too Large")
            if body_md5:
                actual = base64.b64encode(hashlib.md5(request.body).digest()).decode("ascii")
                if not request.body or actual != body_md5:
                    return Denial(400, "Invalid Content-MD5")
            if is_form and (denial := self._check_signature(request, credential, request.body)):
                return denial
        elif is_form and (denial := self._check_signature(request, credential, b"")):
            # Higress never checks the signature of a body-less form request (no body phase);
            # the emulator checks it anyway rather than let such requests through unsigned.
            return denial
        return credential.consumer

    def _check_signature(self, request: Request, credential: HmacCredential, form_body: bytes | None) -> Denial | None:
        headers = request.headers
        signature = headers.get("x-ca-signature", "")
        if not signature:
            return Denial(401, "Empty Signature")
        if self._date_offset and not self._date_in_window(headers):
            return Denial(400, "Invalid Date")
        sts = string_to_sign(request.method, request.target, headers, form_body)
        digest = hashlib.sha1 if headers.get("x-ca-signature-method", "") == "HmacSHA1" else hashlib.sha256
        expected = base64.b64encode(hmac.new(credential.secret.encode("utf-8"), sts, digest).digest()).decode("ascii")
        if not hmac.compare_digest(expected.encode("ascii"), to_wire_bytes(signature)):
            # The header carries the raw octets; latin-1 text makes the server send them unchanged.
            tip = sts.replace(b"\n", b"#").decode("latin-1")
            return Denial(400, "Invalid Signature", (("X-Ca-Error-Message", f"Server StringToSign:`{tip}`"),))
        return None

    def _date_in_window(self, headers: Headers) -> bool:
        assert self._date_offset
        now = self._clock()
        date = headers.get("date", "")
        if date:
            when = parse_http_date(date)
        else:
            stamp = headers.get("x-ca-timestamp", "")
            if not _TIMESTAMP.fullmatch(stamp):
                return False
            when = int(stamp) / (1000.0 if len(stamp) >= _MILLIS_MIN_LENGTH else 1.0)
        return when is not None and abs(when - now) <= self._date_offset
