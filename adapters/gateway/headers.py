"""Headers that go to the gateway besides the request's own: the user's, and those the plugin adds.

Extra headers (e.g. a header a gateway route matches on) come from the `extra_headers` credential,
for every request of that configuration, and for LLMs from the `extra_headers` model parameter, for
one invocation (it wins over the credential for a name both give). Either is a JSON object
(`{"X-Route": "team-a"}`) or `Name: value` pairs separated by `;` or line breaks. A header that
carries the consumer's credential, the HMAC signature or HTTP framing cannot be set this way: it
would break the request or impersonate another consumer, so it is refused, naming the header. Header
values are treated as secrets (masked in errors like a key), never quoted in a problem.

The plugin's own headers:
- request attribution (`request_attribution: on`): the Dify app, conversation, message and end-user
  ids of the invocation, as `ATTRIBUTION_HEADERS` name them, only those known, so the gateway can
  rate-limit and trace per app and per user; a value outside RFC 3986's unreserved characters is
  percent-encoded, and cut to `_MAX_ID` characters;
- `x-higress-skip-ai-cache: on` (the LLM's `skip_gateway_cache`), which Higress ai-cache honours:
  the request neither reads nor fills the gateway's cache (alibaba/higress
  `plugins/wasm-go/extensions/ai-cache/README.md`).

The names of the headers added to a request are put on it (`mark`), so HMAC signs them like the
headers it signs of its own (adapters/gateway/auth/hmac.py) and the redactor masks the extra ones.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote

import httpx

from adapters.credentials import PRINTABLE_ASCII, is_token

ATTRIBUTION_HEADERS: Final = (
    ("app_id", "X-Dify-App-Id"),
    ("conversation_id", "X-Dify-Conversation-Id"),
    ("message_id", "X-Dify-Message-Id"),
    ("end_user_id", "X-Dify-End-User-Id"),
)
SKIP_AI_CACHE: Final = ("x-higress-skip-ai-cache", "on")
# Request extensions naming the headers added to a request: all of them (signed), the extra ones (secret).
SIGNED_EXTENSION: Final = "aigw.signed_headers"
SECRET_EXTENSION: Final = "aigw.secret_headers"

# HTTP framing, content negotiation the answer's parsing depends on, and credentials whatever the scheme.
_ALWAYS_RESERVED: Final = frozenset(
    {
        "host", "content-length", "content-type", "transfer-encoding", "connection", "keep-alive", "te",
        "trailer", "upgrade", "expect", "accept", "accept-encoding", "authorization", "proxy-authorization",
        "cookie", "date", "content-md5",
    }
)  # fmt: skip
_HMAC_PREFIX: Final = "x-ca-"
_PLUGIN_OWN: Final = frozenset(name.lower() for _, name in ATTRIBUTION_HEADERS)
_PAIR_SEPARATORS: Final = re.compile(r"[;\r\n]+")
_MAX_HEADERS: Final = 32
_MAX_VALUE: Final = 4096
_MAX_ID: Final = 256


class HeaderError(ValueError):
    """Extra headers that cannot be sent; the message names the header, never its value."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """What the SDK tells of the invocation (None where it tells nothing)."""

    app_id: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None
    end_user_id: str | None = None

    def headers(self) -> dict[str, str]:
        """The attribution headers of the ids that are known."""
        sent = {}
        for attribute, name in ATTRIBUTION_HEADERS:
            value = getattr(self, attribute)
            if value:
                sent[name] = quote(str(value), safe="-._~")[:_MAX_ID]
        return sent


def extra_headers(raw: str, reserved: Iterable[str] = ()) -> tuple[tuple[str, str], ...]:
    """The (name, value) pairs of an extra-headers text; `reserved` adds the auth scheme's own header
    names to those always refused. Raises HeaderError naming what is wrong."""
    text = raw.strip()
    if not text:
        return ()
    pairs = _json_pairs(text) if text.startswith("{") else _text_pairs(text)
    if len(pairs) > _MAX_HEADERS:
        raise HeaderError(f"holds {len(pairs)} headers; at most {_MAX_HEADERS} are sent.")
    refused = _ALWAYS_RESERVED | {name.lower() for name in reserved}
    seen: set[str] = set()
    for name, value in pairs:
        lowered = name.lower()
        if not is_token(name):
            raise HeaderError(f"{name[:64]!r} is not a valid HTTP header name.")
        if lowered in refused or lowered.startswith(_HMAC_PREFIX):
            raise HeaderError(
                f"header {name!r} carries the consumer's credential or HTTP framing; it cannot be set here."
            )
        if lowered in _PLUGIN_OWN:
            raise HeaderError(f"header {name!r} is the plugin's own; switch on request_attribution to send it.")
        if lowered in seen:
            raise HeaderError(f"header {name!r} is given twice.")
        if not PRINTABLE_ASCII.fullmatch(value) or len(value) > _MAX_VALUE:
            raise HeaderError(
                f"the value of header {name!r} must be printable ASCII of at most {_MAX_VALUE} characters."
            )
        seen.add(lowered)
    return tuple(pairs)


def _json_pairs(text: str) -> list[tuple[str, str]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise HeaderError(f"is not a valid JSON object ({exc.msg} at character {exc.pos}).") from None
    if not isinstance(data, dict):
        raise HeaderError('must be a JSON object such as {"X-Route": "team-a"}, or Name: value pairs.')
    for name, value in data.items():
        if not isinstance(value, str):
            raise HeaderError(f"the value of header {name[:64]!r} must be a JSON string.")
    return [(name.strip(), value.strip()) for name, value in data.items()]


def _text_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for piece in _PAIR_SEPARATORS.split(text):
        if not piece.strip():
            continue
        name, colon, value = piece.partition(":")
        if not colon:
            raise HeaderError(f"{name.strip()[:64]!r} is not Name: value; separate headers with ';' or line breaks.")
        pairs.append((name.strip(), value.strip()))
    return pairs


def mark(request: httpx.Request, added: Iterable[str], secret: Iterable[str]) -> None:
    """Record on `request` the headers added to it (signed by HMAC) and which of them are secret."""
    request.extensions[SIGNED_EXTENSION] = tuple(added)
    request.extensions[SECRET_EXTENSION] = tuple(secret)


def secret_values(request: httpx.Request | None) -> tuple[tuple[str, str], ...]:
    """(label, value) of the secret headers `mark` recorded on `request`."""
    if request is None:
        return ()
    names = request.extensions.get(SECRET_EXTENSION, ())
    return tuple((f"header {name}", request.headers[name]) for name in names if request.headers.get(name))


def merged(base: Iterable[tuple[str, str]], override: Mapping[str, str]) -> dict[str, str]:
    """`base` headers with `override` winning for a name both give (names compared case-blind)."""
    overridden = {name.lower() for name in override}
    return {**{name: value for name, value in base if name.lower() not in overridden}, **override}
