"""Run the gateway emulator as a process (for tests that spawn the plugin or other tools).

    python -m tests.emulator --port 0 [--tls-cert C --tls-key K] [--auth api_key|jwt|hmac|none]

Prints `READY http://127.0.0.1:PORT` (https with TLS) on stdout once listening, and one
`CONSUMER {json}` line on stderr describing the credentials to use. Runs until SIGTERM,
SIGINT or stdin reaches EOF (pass --ignore-stdin when stdin is /dev/null).
"""

from __future__ import annotations

import argparse
import base64
import json
import signal
import ssl
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .app import GatewayEmulator
from .auth import Consumer
from .server import EmulatorServer


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.emulator", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    p.add_argument("--tls-cert", help="PEM certificate chain; serves https when given with --tls-key")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--auth", choices=("api_key", "jwt", "hmac", "none"), default="none")
    p.add_argument("--consumer", default="emulator", help="consumer name")
    p.add_argument("--api-key", default="sk-emulator")
    p.add_argument("--api-key-header", default="Authorization", help='Authorization expects "Bearer <key>"')
    p.add_argument("--api-key-query", default=None, help="take the key from this query parameter instead")
    p.add_argument("--hmac-access-key", default="emulator-ak")
    p.add_argument("--hmac-secret-key", default="emulator-sk")
    p.add_argument("--hmac-date-offset", type=float, default=900.0, help="seconds; 0 disables the Date check")
    p.add_argument("--jwt-secret", default="emulator-jwt-secret-0123456789abcdef", help="HS256 secret")
    p.add_argument("--jwt-claim-value", default="emulator-uid", help="required value of the uid claim")
    p.add_argument("--strict-fields", action="store_true", help="400 on unknown chat fields")
    p.add_argument("--max-batch", type=int, default=10)
    p.add_argument("--recorded", type=Path, help="folder of answers served by /_recorded/<file>/ (recorded.py)")
    p.add_argument("--ignore-stdin", action="store_true", help="do not stop when stdin closes")
    return p


def _consumer(args: argparse.Namespace) -> tuple[Consumer | None, dict[str, Any]]:
    if args.auth == "api_key":
        consumer = Consumer(args.consumer, api_key=args.api_key, api_key_header=args.api_key_header,
                            api_key_query=args.api_key_query)  # fmt: skip
        where = f"query {args.api_key_query}" if args.api_key_query else f"header {args.api_key_header}"
        return consumer, {"name": args.consumer, "api_key": args.api_key, "source": where}
    if args.auth == "hmac":
        consumer = Consumer(args.consumer, hmac_access_key=args.hmac_access_key, hmac_secret_key=args.hmac_secret_key)
        return consumer, {"name": args.consumer, "access_key": args.hmac_access_key, "secret_key": args.hmac_secret_key}
    if args.auth == "jwt":
        k = base64.urlsafe_b64encode(args.jwt_secret.encode()).rstrip(b"=").decode()
        jwks = {"keys": [{"kty": "oct", "kid": "emulator", "alg": "HS256", "k": k}]}
        consumer = Consumer(args.consumer, jwt_jwks=jwks, jwt_claim_value=args.jwt_claim_value)
        return consumer, {
            "name": args.consumer,
            "jwt_secret": args.jwt_secret,
            "alg": "HS256",
            "uid": args.jwt_claim_value,
        }
    return None, {}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    consumer, info = _consumer(args)
    emulator = GatewayEmulator(
        consumers=[consumer] if consumer else [],
        strict_fields=args.strict_fields,
        max_batch=args.max_batch,
        hmac_date_offset=args.hmac_date_offset or None,
        recorded_dir=args.recorded.resolve() if args.recorded else None,
    )
    context = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            print("--tls-cert and --tls-key go together", file=sys.stderr)
            return 2
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not args.ignore_stdin:
        threading.Thread(target=lambda: (sys.stdin.buffer.read(), stop.set()), daemon=True).start()

    server = EmulatorServer(emulator, port=args.port, ssl_context=context).start()
    try:
        if info:
            print("CONSUMER " + json.dumps(info), file=sys.stderr, flush=True)
        print(f"READY {server.url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
