"""Gateway base URLs, checked once, and the route URLs joined to them.

`endpoint_url` is the gateway base ending in `/v1`, optionally behind a base path
(`https://gw.example.com/team-a/v1`), or several such bases separated by commas or line breaks
(two regions of one gateway), tried in that order when one fails (adapters/gateway/failover.py).
Route paths in routes.yaml start with `/v1/...` or a DashScope path such as `/api/v1/...`, so they
are joined to the base with that `/v1` removed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from adapters.credentials import credential_error

_ROUTE_SUFFIXES = (
    "/chat/completions",
    "/completions",
    "/embeddings",
    "/rerank",
    "/reranks",
    "/audio/speech",
    "/audio/transcriptions",
)


@dataclass(frozen=True, slots=True)
class Endpoint:
    base_url: str

    def url(self, path: str) -> str:
        """The URL of a route path (`/v1/...` or `/api/v1/...`, as routes.yaml writes it)."""
        return self.base_url + path


# What separates several base URLs in one field: a URL holds neither a comma nor white space.
_URL_SEPARATORS: Final = re.compile(r"[,\s]+")


def endpoints_from_field(raw: str, field: str = "endpoint_url") -> tuple[Endpoint, ...]:
    """The endpoints of a field holding one base URL or several; a problem names the URL by its place."""
    urls = [url for url in _URL_SEPARATORS.split(raw) if url]
    if not urls:
        raise credential_error(field, "is required, e.g. https://gw.example.com/v1.")
    endpoints: list[Endpoint] = []
    for number, url in enumerate(urls, start=1):
        which = f"URL {number} of {len(urls)}" if len(urls) > 1 else ""
        endpoint = endpoint_from_url(url, field, which)
        if endpoint in endpoints:
            raise credential_error(field, f"URL {number} repeats URL {endpoints.index(endpoint) + 1}.")
        endpoints.append(endpoint)
    return tuple(endpoints)


def endpoint_from_url(raw: str, field: str = "endpoint_url", which: str = "") -> Endpoint:
    """The endpoint a base URL names; `field` is the credential it came from and `which` the URL's
    place in it ("URL 2 of 3"), for the error."""
    if not raw:
        raise credential_error(field, "is required, e.g. https://gw.example.com/v1.")
    subject = f"{which} " if which else ""
    # Checked before anything quotes the URL: `user:password@` may hold a secret, and with no
    # scheme (`key@gw.example.com/v1`) urlsplit would not see it as user-info at all.
    if "@" in raw.partition("://")[2 if "://" in raw else 0].split("/")[0]:
        raise credential_error(field, f"{subject}must not carry a user name or password; use the auth fields instead.")
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # The value is described, not quoted: a key pasted into the wrong field must not be echoed.
        found = f"scheme {parts.scheme[:16]!r}" if parts.scheme not in ("http", "https", "") else "no http(s) scheme"
        found = "no host" if parts.scheme in ("http", "https") else found
        raise credential_error(
            field,
            f"{subject}must be an http:// or https:// URL with a host, e.g. https://gw.example.com/v1; it has {found}.",
        )
    if parts.query or parts.fragment:
        raise credential_error(field, f"{subject}must not have a query string or fragment.")
    path = parts.path.rstrip("/")
    if path.endswith(_ROUTE_SUFFIXES):
        raise credential_error(
            field, f"{subject}should be the base URL ending in /v1, not a full route ({parts.path})."
        )
    return Endpoint(f"{parts.scheme}://{parts.netloc}{path.removesuffix('/v1')}")
