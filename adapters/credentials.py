"""Reading the credential fields Dify hands over, and the one way a bad field is reported.

Every module that reads a credential field reads it through `text` (missing and None read as
empty, values stripped), and every check fails with `credential_error`, whoever reads the field:
the gateway configuration (adapters/gateway/config.py), the customizable-model form
(adapters/catalog/resolver.py), the provider's own field (adapters/provider.py):

    Credential field 'endpoint_url': must be an http:// or https:// URL with a host, got 'gw/v1'.

A problem may quote the value only for a field that holds no secret. Values that go into an HTTP
header are checked here before any request exists, because httpx/h11 reject a bad header value
with an error that quotes the whole value, which would put a secret into an exception message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, Final

from dify_plugin.errors.model import CredentialsValidateFailedError

# RFC 9110 token characters: anything else cannot be a header name.
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
PRINTABLE_ASCII: Final = re.compile(r"[\x20-\x7e]*")
# Headers that carry HTTP framing or routing; putting a credential there would break the request.
# A scheme-word field (api_key_prefix, jwt_header_prefix) set to this sends the credential alone: Dify
# stores a field the user emptied as absent, which means the default word, so "none" needs a word.
NO_PREFIX: Final = "none"
_RESERVED_HEADERS: Final = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "te", "upgrade"}
)


def credential_error(field: str, problem: str) -> CredentialsValidateFailedError:
    return CredentialsValidateFailedError(f"Credential field '{field}': {problem}")


def environment_error(name: str, problem: str) -> CredentialsValidateFailedError:
    """The same for an environment variable that changes how the plugin connects (a CA, a proxy)."""
    return CredentialsValidateFailedError(f"Environment variable {name}: {problem}")


def text(credentials: Mapping[str, Any], field: str) -> str:
    """The field as a stripped string; missing and None read as empty."""
    value = credentials.get(field)
    return "" if value is None else str(value).strip()


def converted[Value](
    credentials: Mapping[str, Any],
    field: str,
    convert: Callable[[str], Value],
    fits: Callable[[Value], bool],
    expected: str,
) -> Value | None:
    """The field through `convert`, or None when it is empty; for fields that hold no secret only.

    A value that does not convert, or does not fit, fails as "Credential field '<field>': <expected>,
    got '<value>'."
    """
    raw = text(credentials, field)
    if not raw:
        return None
    try:
        value = convert(raw)
    except (ValueError, ArithmeticError):  # ArithmeticError: decimal.InvalidOperation
        pass
    else:
        if fits(value):
            return value
    raise credential_error(field, f"{expected}, got {raw!r}.")


# Packed options: `name=value` pairs in one text field, separated by `;` or line breaks.
_OPTION_SEPARATORS: Final = re.compile(r"[;\r\n]")
_OPTION_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")


def packed_options(credentials: Mapping[str, Any], field: str, known: Collection[str]) -> dict[str, str]:
    """The `name=value` options written in one text field (gateway_options, model_options).

    Rarely used settings share one field so the forms stay within the 32 fields Dify's daemon
    accepts. Names are the credential field names those settings had when they were fields of
    their own. A value may be empty (`jwt_header_prefix=`) and may hold anything but `;` and line
    breaks. A piece that is not `name=value`, a name given twice, or a name not in `known` fails
    naming `field`; the caller checks that each name applies. For fields that hold no secret only.
    """
    options: dict[str, str] = {}
    for piece in _OPTION_SEPARATORS.split(text(credentials, field)):
        piece = piece.strip()
        if not piece:
            continue
        name, equals, value = piece.partition("=")
        name = name.strip().lower()
        if not equals or not _OPTION_NAME.fullmatch(name):
            raise credential_error(field, f"{piece[:48]!r} is not name=value; separate options with ';'.")
        if name in options:
            raise credential_error(field, f"{name!r} is given twice.")
        if name not in known:
            raise credential_error(field, f"unknown option {name!r}; options are {', '.join(known)}.")
        options[name] = value.strip()
    return options


def with_options(credentials: Mapping[str, Any], options: Mapping[str, str], names: Iterable[str]) -> dict[str, Any]:
    """Each of `names` from `options`, else from the credential field of that name.

    Installs of earlier versions stored these settings as fields of their own; Dify keeps handing
    them over until the form is saved again, so they still count where no option replaces them.
    """
    return {name: options[name] if name in options else credentials.get(name) for name in names}


def required_text(credentials: Mapping[str, Any], field: str) -> str:
    value = text(credentials, field)
    if not value:
        raise credential_error(field, "is required but empty.")
    return value


def header_value(credentials: Mapping[str, Any], field: str) -> str:
    """A required value that will travel in a header, checked so httpx/h11 never echo it back."""
    value = required_text(credentials, field)
    if not PRINTABLE_ASCII.fullmatch(value):
        raise credential_error(field, "contains characters that cannot be sent in an HTTP header.")
    return value


def is_token(value: str) -> bool:
    """An RFC 9110 token: a header name, or an auth scheme word such as Bearer."""
    return bool(_HEADER_NAME.fullmatch(value))


def header_name(credentials: Mapping[str, Any], field: str, default: str) -> str:
    name = text(credentials, field) or default
    if not _HEADER_NAME.fullmatch(name):
        raise credential_error(field, f"{name[:64]!r} is not a valid HTTP header name.")
    if name.lower() in _RESERVED_HEADERS:
        raise credential_error(field, f"{name!r} is reserved for HTTP framing; choose another header.")
    return name
