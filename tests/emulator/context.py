"""Per-request context handed from the app to the route handlers."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .faults import Faults
from .wire import Request

__all__ = ["Context", "Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    strict_fields: bool
    allowed_extra_fields: frozenset[str]
    max_batch: int
    embedding_dim: int
    models: tuple[str, ...] | None  # None: no GET /v1/models route


@dataclass(frozen=True, slots=True)
class Context:
    request: Request
    faults: Faults
    settings: Settings
    created: int  # unix seconds for "created" fields
    next_seq: Callable[[], int]  # emulator-wide counter: ids stay unique and deterministic
    store_file: Callable[[bytes], str]  # keeps generated audio, returns its id

    def json_object(self) -> dict[str, Any] | None:
        """The request body as a JSON object, or None when it is not one."""
        try:
            body = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def request_id(self) -> str:
        """A DashScope-style request id, deterministic per emulator run."""
        n = self.next_seq()
        return f"00000000-0000-4000-8000-{n:012d}"
