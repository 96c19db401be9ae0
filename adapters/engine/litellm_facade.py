"""LiteLLM, configured once for this plugin: offline, quiet, and loaded off the start-up path.

The plugin uses LiteLLM's provider-level translation (the per-provider `*Config` classes that build
request bodies and parse responses and stream chunks) and sends the bytes itself through
adapters/gateway/transport.py. That keeps LiteLLM's knowledge of each API while skipping the per-call and
per-chunk machinery around `litellm.completion()` (logging threads, cost maps, retries) that
costs milliseconds per call and most of the CPU of a stream (litellm-notes.md §5).

Importing LiteLLM takes 2-4 s, so the plugin answers its first heartbeat before paying for it
(main.py starts the import right after that heartbeat).
"""

from __future__ import annotations

import gc
import importlib
import os
import threading
from types import ModuleType

# Set before LiteLLM is imported, and forced: the plugin must not fetch the remote cost map, load a
# .env file, download tokenizers or log prompts, whatever the environment around it says.
_PRIVATE_ENV = {
    "LITELLM_OFFLINE_MODE": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_MODE": "PRODUCTION",
    "LITELLM_LOG": "ERROR",
    "LITELLM_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "DEFAULT_MAX_RETRIES": "0",
}
os.environ.update(_PRIVATE_ENV)

_module: ModuleType | None = None


def _configure(module: ModuleType) -> ModuleType:
    module.suppress_debug_info = True
    module.turn_off_message_logging = True
    module.disable_streaming_logging = True
    module.disable_hf_tokenizer_download = True
    module.telemetry = False
    module.DEFAULT_MAX_RETRIES = 0
    module.callbacks = []
    # The pieces the adapters call, imported now so that cost is paid off the request path too.
    importlib.import_module("litellm.llms.openai.chat.gpt_transformation")
    importlib.import_module("litellm.llms.openai.completion.transformation")
    importlib.import_module("litellm.litellm_core_utils.llm_response_utils.convert_dict_to_response")
    return module


def _import() -> ModuleType:
    # Performance (make bench, "spawn -> first answer"): the import builds ~440k long-lived objects
    # (some 2,500 pydantic model classes among them) and the cyclic GC, triggered by allocation
    # counts, re-scans them over and over while it runs; pausing it cuts the import from ~2.5 s to
    # ~2.0 s on the benchmark machine. Freezing what the import built then keeps those objects out
    # of every later collection: one full collection over them costs ~0.3 s, a stall for every
    # greenlet of the plugin. The few cycles already garbage at this point (~1,300 objects) stay
    # allocated; that is the whole cost.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _configure(importlib.import_module("litellm"))
    finally:
        if was_enabled:
            gc.freeze()
            gc.enable()


def litellm() -> ModuleType:
    """The configured litellm module, imported on first use if start_loading() has not done it yet."""
    global _module
    if _module is None:
        _module = _import()
    return _module


def start_loading(delay: float = 0.3) -> None:
    """Import LiteLLM in the background, `delay` seconds from now.

    Under the SDK's gevent hub an import cannot yield, so it runs in a greenlet that must start only
    once the first heartbeat has gone out (main.py calls this from that heartbeat, with no delay); a
    request that arrives earlier imports it itself.
    """
    try:
        import gevent
    except ImportError:  # outside the plugin runtime (tools, tests)
        threading.Timer(delay, litellm).start()
        return
    gevent.spawn_later(delay, litellm)
