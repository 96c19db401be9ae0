"""The promises of PRIVACY.md, checked on the running plugin.

- It connects to the configured gateway and nothing else (no cost map, telemetry or tokenizer fetch).
- Its logs and stderr carry no prompt, answer or credential.
- LiteLLM reads no .env file and cannot be switched to verbose logging from the environment.
- No credential is kept as a cache key (connection pools, customizable-model schemas).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import PLUGIN_ROOT, TEST_KEY, Gateway
from tests.stdio_driver import PluginProcess, chat_data, prompt_message

PROVIDER = "aliyun_ai_gateway"
PROMPT = "zebra umbrella 4471 private question"

# Runs the plugin's real entry point under a PEP 578 audit hook that records every outbound
# connection and name lookup the process makes, including LiteLLM's import and first calls.
_AUDITED_MAIN = textwrap.dedent(
    """
    import json, os, runpy, sys

    _log = open(os.environ["AUDIT_LOG"], "a", buffering=1)

    def _hook(event, args):
        if event == "socket.connect" and isinstance(args[1], tuple):
            _log.write(json.dumps({"connect": list(args[1][:2])}) + "\\n")
        elif event == "socket.getaddrinfo":
            _log.write(json.dumps({"lookup": str(args[0])}) + "\\n")

    sys.addaudithook(_hook)
    runpy.run_module("main", run_name="__main__")
    """
)


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PluginProcess, Path]]:
    folder = tmp_path_factory.mktemp("audit")
    (folder / "audited_main.py").write_text(_AUDITED_MAIN, encoding="utf-8")
    log = folder / "audit.jsonl"
    env = {
        "INSTALL_METHOD": "local",
        "AUDIT_LOG": str(log),
        "PYTHONPATH": f"{folder}{os.pathsep}{PLUGIN_ROOT}",
        # Switches that would make a careless LiteLLM set-up log prompts, if it honoured them.
        "LITELLM_LOG": "DEBUG",
        "LITELLM_MODE": "DEV",
    }
    with PluginProcess.start(PLUGIN_ROOT, env=env, entrypoint="audited_main") as process:
        yield process, log


def _exercise(plugin: PluginProcess, gateway: Gateway) -> list:
    credentials = gateway.credentials(validate_model="qwen-max")
    plugin.request("validate_provider_credentials", {"provider": PROVIDER, "credentials": credentials})
    answers = []
    for stream in (False, True):
        answers += plugin.request("invoke_llm", chat_data(PROVIDER, "qwen-plus", credentials, PROMPT, stream=stream))
    plugin.request(
        "get_llm_num_tokens",
        {
            "provider": PROVIDER,
            "model_type": "llm",
            "model": "qwen-plus",
            "credentials": credentials,
            "prompt_messages": [prompt_message("user", PROMPT)],
        },
    )
    return answers


def test_the_plugin_connects_to_the_gateway_and_nothing_else(
    audited: tuple[PluginProcess, Path], gateway: Gateway
) -> None:
    plugin, log = audited
    _exercise(plugin, gateway)
    events = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    port = int(gateway.base_url.rsplit(":", 1)[1])
    connects = [tuple(e["connect"]) for e in events if "connect" in e]
    assert connects, "the audit hook saw the gateway connection"
    assert set(connects) == {("127.0.0.1", port)}
    assert {e["lookup"] for e in events if "lookup" in e} <= {"127.0.0.1"}


def test_logs_and_stderr_hold_no_prompt_answer_or_key(audited: tuple[PluginProcess, Path], gateway: Gateway) -> None:
    plugin, _ = audited
    answers = _exercise(plugin, gateway)
    answer = "".join(item["delta"]["message"]["content"] for item in answers)
    assert PROMPT in answer, "the emulator echoed the prompt, so the answer is recognisable"
    emitted = json.dumps(plugin.logs) + plugin.stderr_text() + "".join(plugin.non_json_lines)
    for secret in (TEST_KEY, PROMPT, "zebra"):
        assert secret not in emitted


def test_litellm_loads_no_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("FOO_FROM_DOTENV=leaked\nLITELLM_LOG=DEBUG\n", encoding="utf-8")
    probe = (
        "import adapters.engine.litellm_facade as e; e.litellm(); import os; print(os.environ.get('FOO_FROM_DOTENV'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(PLUGIN_ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "None"
    assert "LiteLLM" not in done.stderr


# Counts tokens as the plugin does, under a PEP 578 audit hook recording every connection, name
# lookup, directory created and file opened for writing, and prints what it saw and the counts.
_AUDITED_TOKEN_COUNT = textwrap.dedent(
    """
    import json, os, sys

    seen = []
    _WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT

    def _hook(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "os.mkdir"):
            seen.append([event, str(args[1] if event == "socket.connect" else args[0])])
        elif event == "open":
            path, mode, flags = args
            writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & _WRITE)
            # tempfile.gettempdir() probes that the temporary directory is writable with a file it
            # removes at once (LiteLLM asks for the directory at import); anything else counts.
            if writing and os.path.dirname(str(path)) != os.environ["TMPDIR"]:
                seen.append([event, str(path)])

    sys.addaudithook(_hook)
    from adapters.engine import litellm_facade as facade

    facade.litellm()
    models = ("qwen-max", "gpt-4o", "claude-2", "llama-3-8b-instruct", "command-r", "deepseek-chat")
    counts = [facade.count_tokens(model=m, text="How many tokens are in here?") for m in models]
    counts.append(facade.count_tokens(model="qwen-plus", messages=[{"role": "user", "content": "hi there"}]))
    print(json.dumps({"seen": seen, "counts": counts}))
    """
)
# Every variable that points LiteLLM, tiktoken or Hugging Face at a cache or a download.
_TOKENIZER_ENV = {
    "CUSTOM_TIKTOKEN_CACHE_DIR": "custom-tiktoken",
    "TIKTOKEN_CACHE_DIR": "tiktoken",
    "DATA_GYM_CACHE_DIR": "data-gym",
    "HF_HOME": "hf-home",
    "HF_HUB_CACHE": "hf-hub",
    "TRANSFORMERS_CACHE": "transformers",
    "XDG_CACHE_HOME": "xdg-cache",
}


def test_tokenizers_stay_offline_under_any_environment(tmp_path: Path) -> None:
    """Nothing downloaded, no directory created, and token counts from the bundled encodings."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {name: str(tmp_path / folder) for name, folder in _TOKENIZER_ENV.items()}
    env |= {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "0", "LITELLM_LOCAL_MODEL_COST_MAP": "False"}
    env |= {"PYTHONPATH": str(PLUGIN_ROOT), "PYTHONDONTWRITEBYTECODE": "1", "TMPDIR": str(temporary)}
    env |= {"HOME": str(tmp_path / "home"), "PATH": os.environ.get("PATH", "")}
    done = subprocess.run(
        [sys.executable, "-c", _AUDITED_TOKEN_COUNT], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["seen"] == [], "no connection, lookup, directory or file written"
    assert all(isinstance(n, int) and n > 0 for n in report["counts"]), report["counts"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"], "none of the cache folders was created"
    assert list(temporary.iterdir()) == []


# Credentials of each auth scheme whose secret values all carry MARK, over the same model form.
MARK = "S3CRET-kept-nowhere-91"
_SCHEME_FIELDS = (
    {"auth_method": "api_key", "api_key": f"sk-{MARK}"},
    {
        "auth_method": "jwt",
        "jwt_jwks": json.dumps({"kty": "oct", "k": base64.urlsafe_b64encode(f"{MARK}-hs256-secret".encode()).decode()}),
        "jwt_consumer_id": f"uid-{MARK}",
    },
    {"auth_method": "hmac", "hmac_access_key": f"ak-{MARK}", "hmac_secret_key": f"sk-{MARK}"},
)
_FORMS = {
    "llm": {"context_size": "16384", "input_price": "2", "currency": "USD"},
    "text-embedding": {"max_chunks": "4"},
    "rerank": {"context_size": "2048"},
    "speech2text": {"language": "en"},
    "tts": {"voices": "alloy,echo"},
}


def _leaves(value: object) -> Iterator[object]:
    """Every str/bytes/number inside a cache key, however nested."""
    if isinstance(value, tuple | list | frozenset | set):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def test_no_secret_is_kept_as_a_cache_key() -> None:
    """PRIVACY.md: sessions and customizable schemas are keyed on what they depend on, never on a secret."""
    from adapters.gateway import transport
    from adapters.models import base
    from tests.conftest import adapter

    for model_type, form in _FORMS.items():
        schemas = []
        for scheme in _SCHEME_FIELDS:
            credentials = {"endpoint_url": "https://gw.example.com/v1", **scheme, **form}
            schemas.append(adapter(model_type).get_model_schema(f"my-{model_type}-model", credentials))
            transport.session_for(credentials)
        assert schemas[0] is not None and all(s is schemas[0] for s in schemas), "one entry per model form"
    keys = [*base._customizable_schemas, *transport._sessions]
    assert len(base._customizable_schemas) >= len(_FORMS) and len(transport._sessions) >= len(_SCHEME_FIELDS)
    fragments = [MARK, *(v for scheme in _SCHEME_FIELDS for v in scheme.values() if len(v) > 12)]
    for leaf in _leaves(keys):
        shown = leaf.decode("latin-1") if isinstance(leaf, bytes) else str(leaf)
        assert not any(fragment in shown for fragment in fragments), shown
    assert not any(fragment in repr(keys) for fragment in fragments)


def test_the_schema_cache_reads_exactly_the_model_forms_fields() -> None:
    from adapters.catalog.resolver import LEGACY_MODEL_FIELDS, MODEL_FORM_FIELDS, MODEL_OPTIONS
    from adapters.gateway.config import GATEWAY_FIELDS

    source = yaml.safe_load((PLUGIN_ROOT / "provider_configs" / "provider.yaml").read_text(encoding="utf-8"))
    model_form = {f["variable"] for f in source["model_fields"]} - {"endpoint_model_name"}  # the name sent, not schema
    options = {name for names in MODEL_OPTIONS.values() for name in names}
    assert set(MODEL_FORM_FIELDS) == model_form | {"route_preset"} | options | set(LEGACY_MODEL_FIELDS)
    secret_fields = {
        f["variable"] for section in source.values() if isinstance(section, list) for f in section
        if isinstance(f, dict) and f.get("type") == "secret-input"
    }  # fmt: skip
    assert secret_fields and secret_fields <= set(GATEWAY_FIELDS) and not secret_fields & set(MODEL_FORM_FIELDS)
