"""Which certificate authorities the plugin trusts for the gateway's TLS.

The trust store is the union of
- certifi's roots (Mozilla's list, the same on every host, so a public gateway domain just works);
- the host's system store: the CA bundle and hashed directory this Python's OpenSSL was built to
  read, or, when its bundle is not on this host (a standalone Python build), the first bundle
  found where Linux distributions keep theirs;
- what the environment adds for a private CA: `SSL_CERT_FILE` and `REQUESTS_CA_BUNDLE` (a bundle,
  or a hashed directory, as requests allows), `SSL_CERT_DIR` (hashed directories, `c_rehash`
  style, separated by os.pathsep).

OpenSSL itself reads SSL_CERT_FILE and SSL_CERT_DIR *instead of* the system store; here they are
added to it, so pointing them at a private CA keeps the public roots. A path that is missing or
not certificates fails naming the variable, before any request.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import certifi

from adapters.credentials import environment_error

CA_ENVIRONMENT: Final = ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE")
# Where distributions keep the system bundle (Debian/Ubuntu, Fedora/RHEL, Alpine/Arch/BSD, SUSE).
_SYSTEM_BUNDLES: Final = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    # (environment variable, path) of each CA bundle or hashed directory trusted besides the public
    # and system roots; the variable is kept for the error a bad path gives.
    extra_cas: tuple[tuple[str, str], ...] = ()


def tls_config(environment: Mapping[str, str]) -> TlsConfig:
    """The private CAs the CA_ENVIRONMENT variables of `environment` name, each checked to exist."""
    found: list[tuple[str, str]] = []
    for name in CA_ENVIRONMENT:
        value = environment.get(name, "")
        paths = value.split(os.pathsep) if name == "SSL_CERT_DIR" else [value]
        for path in filter(None, (p.strip() for p in paths)):
            if not os.path.exists(path):
                raise environment_error(name, f"names {path}, which does not exist.")
            found.append((name, path))
    return TlsConfig(tuple(found))


_lock = threading.Lock()
_stores: dict[TlsConfig, ssl.SSLContext] = {}


def trust_store(tls: TlsConfig) -> ssl.SSLContext:
    """The client SSLContext trusting certifi, the system store and `tls`'s CAs.

    Building one costs ~20 ms, so one is shared by every client with the same TLS settings.
    """
    with _lock:
        if tls not in _stores:
            _stores[tls] = _build(tls)
        return _stores[tls]


def _build(tls: TlsConfig) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=certifi.where())
    bundle, directory = system_store()
    if bundle or directory:
        context.load_verify_locations(cafile=bundle, capath=directory)
    for name, path in tls.extra_cas:
        try:
            if os.path.isdir(path):
                context.load_verify_locations(capath=path)
            else:
                context.load_verify_locations(cafile=path)
        except (OSError, ssl.SSLError) as exc:
            reason = getattr(exc, "reason", None) or exc.strerror or type(exc).__name__
            raise environment_error(name, f"{path} could not be read as CA certificates ({reason}).") from None
    return context


def system_store() -> tuple[str | None, str | None]:
    """(bundle, hashed directory) of the host's own CAs, either None where there is none."""
    paths = ssl.get_default_verify_paths()  # its openssl_* fields ignore SSL_CERT_FILE/SSL_CERT_DIR
    bundle = next((p for p in (paths.openssl_cafile, *_SYSTEM_BUNDLES) if p and os.path.isfile(p)), None)
    directory = paths.openssl_capath if paths.openssl_capath and os.path.isdir(paths.openssl_capath) else None
    return bundle, directory
