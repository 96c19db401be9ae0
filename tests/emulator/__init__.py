"""Local emulator of Alibaba Cloud AI Gateway (Higress-based) client-facing wire formats.

    from tests.emulator import GatewayEmulator, Consumer, serve

    emu = GatewayEmulator(consumers=[Consumer(name="team-a", api_key="sk-test-a")])
    with serve(emu) as base_url:                      # http://127.0.0.1:PORT
        httpx.post(base_url + "/team-a/v1/chat/completions",
                   headers={"Authorization": "Bearer sk-test-a"},
                   json={"model": "qwen-max", "messages": [{"role": "user", "content": "hi"}]})
    emu.received[-1].consumer == "team-a"

Faults: put `/_fault/<name>` before the route suffix (see faults.py or
GatewayEmulator.fault_help()). Run standalone with `python -m tests.emulator --help`.
"""

from .app import DEFAULT_MODELS, ROUTES, GatewayEmulator, Route
from .audio import make_wav
from .auth import AuthMode, Consumer
from .chat import DEFAULT_EXTRA_FIELDS, OPENAI_CHAT_FIELDS
from .denial import Denial
from .embeddings import embedding_vector
from .faults import FAULT_HELP, STATUS_CODES, Faults, parse_faults
from .guard import DENY_MESSAGE, deny_body
from .hmac_auth import HmacVerifier, parse_http_date, string_to_sign, string_to_sign_text
from .multipart import MultipartFile, parse_form
from .server import EmulatorServer, serve
from .wire import ABORT, Headers, Pause, ReceivedRequest, Request, Response
from .words import count_words, overlap_score, split_keep_spaces

__all__ = [
    "ABORT",
    "DEFAULT_EXTRA_FIELDS",
    "DEFAULT_MODELS",
    "DENY_MESSAGE",
    "FAULT_HELP",
    "OPENAI_CHAT_FIELDS",
    "ROUTES",
    "STATUS_CODES",
    "AuthMode",
    "Consumer",
    "Denial",
    "EmulatorServer",
    "Faults",
    "GatewayEmulator",
    "Headers",
    "HmacVerifier",
    "MultipartFile",
    "Pause",
    "ReceivedRequest",
    "Request",
    "Response",
    "Route",
    "count_words",
    "deny_body",
    "embedding_vector",
    "make_wav",
    "overlap_score",
    "parse_faults",
    "parse_form",
    "parse_http_date",
    "serve",
    "split_keep_spaces",
    "string_to_sign",
    "string_to_sign_text",
]
