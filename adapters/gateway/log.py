"""The one log line per gateway attempt that did not end well: a retry, a failover, a final failure.

    AI Gateway retry: method=POST route=/v1/embeddings status=503 request_id=7f3a attempt=1/3 latency_ms=41
                      retry_in_s=0.50
    AI Gateway failure: method=POST route=/v1/chat/completions status=read_timeout request_id=- attempt=1/1
                        latency_ms=300004

(one line each, wrapped here).
`status` is the gateway's HTTP status, or how the attempt failed without one (`read_timeout`,
`connect_error`, `tls_untrusted`, ... see gateway/errors.py `failure_kind`); `problem` follows it
when a 200 answer broke afterwards or could not be used (`connection_closed`, `read_timeout`,
`unusable_answer`, ...). Lines go to the `adapters.gateway` logger
at WARNING, which main.py forwards to Dify's plugin log.

A line holds only what is listed here: the method, the route path (never the host's query string,
which can carry a key), the status, the gateway's request id, the attempt number, the milliseconds
the attempt took, and the event's own fields (a retry's wait; failover adds its own). Never a body,
a header, a prompt, an answer or a credential: the request id is the one value that comes from
the gateway, so it is masked (gateway/redaction.py) like an error message, and every value is cut
to one token so nothing a gateway sends can start a forged line. PRIVACY.md lists the same fields.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import Final

import httpx

logger: Final = logging.getLogger("adapters.gateway")

_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.:/\[\]@+-]")
_MAX_VALUE: Final = 80


def log_attempt(
    event: str,
    request: httpx.Request,
    *,
    status: int | str,
    request_id: str | None,
    attempt: int,
    attempts: int,
    started: float,
    redact: Callable[[str], str],
    **fields: object,
) -> None:
    """Log one WARNING line for `event` ("retry", "failover", "failure") of attempt number
    `attempt` (from 1) of `attempts` allowed, sent at `started` (time.monotonic()). `fields` are
    appended as name=value in the order given."""
    values: dict[str, object] = {
        "method": request.method,
        "route": request.url.path,
        "status": status,
        "request_id": redact(request_id) if request_id else "-",
        "attempt": f"{attempt}/{attempts}",
        "latency_ms": round((time.monotonic() - started) * 1000),
        **fields,
    }
    line = " ".join(f"{name}={_token(value)}" for name, value in values.items())
    logger.warning("AI Gateway %s: %s", _token(event), line)


def _token(value: object) -> str:
    return _UNSAFE.sub("_", f"{value:.2f}" if isinstance(value, float) else str(value))[:_MAX_VALUE] or "-"
