"""Masking credential values out of everything the plugin reports about a gateway request.

A gateway may echo what it was sent: a key-auth plugin quoting the Authorization header, Higress'
hmac-auth quoting its string-to-sign with the access key in it (X-Ca-Error-Message), a proxy
copying a header into its error page. The gateway's own words help the user, so errors quote them,
and a `Redactor` first replaces every credential value of the request with the name of the field
it came from: `[api_key]`, `[hmac_access_key]`. The values are the gateway configuration's own
and those its auth put on the request (`GatewayConfig.secrets(request)`: the JWT sent, the HMAC
signature), each also in the percent-encoded forms a query string or a form body gives it. Any
other JWT is masked by its shape (`[jwt]`), whoever signed it.

The gateway session (adapters/gateway/transport.py) builds one for a failed request and masks with
it every error message and log line that carries text from the gateway; its repr shows no value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import quote, quote_plus

# header.payload.signature, the first two being base64url JSON objects (so starting "eyJ").
_JWT: Final = r"eyJ[A-Za-z0-9_-]{2,}\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"
# Values shorter than this are masked only where they stand alone: a 4-character test key must not
# turn every word containing it into "[api_key]".
_WHOLE_WORD_BELOW: Final = 8
_WORD: Final = r"A-Za-z0-9_.~-"


class Redactor:
    """Replaces each known credential value, and any JWT, in a text with the field it came from."""

    __slots__ = ("_labels", "_pattern")

    def __init__(self, secrets: Iterable[tuple[str, str]] = ()) -> None:
        labels: dict[str, str] = {}
        for label, value in secrets:
            for form in (value, quote(value, safe=""), quote_plus(value, safe="")):
                if form:
                    labels.setdefault(form, label)
        # Longest first, so a value that contains another is masked whole.
        pieces = [_alternative(form) for form in sorted(labels, key=len, reverse=True)]
        self._labels = labels
        self._pattern = re.compile("|".join([*pieces, _JWT]))

    def __call__(self, text: str) -> str:
        return self._pattern.sub(self._label, text)

    def _label(self, match: re.Match[str]) -> str:
        return f"[{self._labels.get(match.group(), 'jwt')}]"

    def __repr__(self) -> str:
        return f"Redactor({len(self._labels)} values)"


def _alternative(value: str) -> str:
    escaped = re.escape(value)
    if len(value) >= _WHOLE_WORD_BELOW:
        return escaped
    return rf"(?<![{_WORD}]){escaped}(?![{_WORD}])"
