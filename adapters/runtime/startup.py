"""Checks run once when the plugin process starts, so a broken package fails loudly and early.

A provider_configs/ error found here is written to stderr and, as a log event in the daemon's own
stdio format, to stdout, so the reason reaches Dify's plugin log even though the process then exits
before its first heartbeat. A stale provider_configs/dify/ (the YAML Dify lists models from) only
warns: the running plugin serves schemas from provider_configs/ itself. Staleness is read from the
source digests the generator recorded (adapters/catalog/freshness.py); the generator itself is a
build tool and is not imported here.
"""

from __future__ import annotations

import json
import sys
import time

from adapters.catalog.freshness import changed_sources
from adapters.catalog.loader import CatalogError, default_catalog


def _daemon_log(level: str, message: str) -> None:
    event = {"event": "log", "data": {"level": level, "message": message, "timestamp": time.time()}}
    sys.stdout.write(json.dumps(event, ensure_ascii=False) + "\n\n")
    sys.stdout.flush()
    sys.stderr.write(f"{level}: {message}\n")
    sys.stderr.flush()


def check_provider_configs() -> None:
    """Exit with the reason if provider_configs/ is invalid; warn if the generated YAML is stale."""
    try:
        default_catalog()
        changed = changed_sources()
    except CatalogError as exc:
        _daemon_log("ERROR", f"Alibaba Cloud AI Gateway plugin cannot start: provider_configs error: {exc}")
        raise SystemExit(1) from exc
    if changed:
        _daemon_log(
            "WARNING",
            "provider_configs/dify/ is out of date with provider_configs/ (run `make generate` before packaging); "
            "changed since it was generated: " + ", ".join(changed),
        )
