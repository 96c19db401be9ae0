"""Drive a Dify plugin over the local-runtime stdio protocol, the way the daemon does.

The Dify plugin daemon (Go) runs an installed plugin as::

    <plugin venv>/bin/python -m <entrypoint>     # cwd = plugin dir, env = daemon env + INSTALL_METHOD=local

and talks to it over three pipes:

* **stdin** (daemon -> plugin): one JSON object per line (``json + "\\n"``). Each is an
  envelope ``{"session_id", "conversation_id", "message_id", "app_id", "endpoint_id",
  "context", "event": "request", "data": {...}}``. ``data`` is ``{user_id, type, action}``
  merged with the Go request struct of the action, so Go zero values survive
  (unset numbers arrive as ``0``, unset strings as ``""``, nil slices/maps as ``null``).
* **stdout** (plugin -> daemon): JSON objects, each followed by ``"\\n\\n"``. The daemon
  reads them with a ``bufio.Scanner`` split on lines (blank lines skipped) whose buffer
  is capped at 5 MiB: a longer line makes the daemon stop reading and kill the plugin.
  Message kinds: the manifest (first, no ``event`` key), ``heartbeat``, ``log``, ``error``
  (plugin-level) and ``session`` (``{"type": "stream"|"error"|"end"|"invoke", "data"}``).
* **stderr**: free text, kept by the daemon only for error reports.

We cannot run the Go daemon in tests, so :class:`PluginProcess` re-implements exactly
that contract (spawn, framing, demultiplexing by session id, limits) and nothing more,
so the plugin goes through the SDK's real dispatch path end to end.

Typical use::

    with PluginProcess.start(plugin_dir) as plugin:
        chunks = plugin.request("invoke_llm", {"model": "m", "prompt_messages": [...]},
                                provider="my_provider")

Everything here is thread-safe: several threads may run sessions concurrently on one
process, as the daemon does. It also works when the *test* process has imported
``dify_plugin`` (which gevent-monkey-patches threading/subprocess/queue): all waiting goes
through the patched primitives and pipe file objects, so it stays cooperative and never
blocks other greenlets (e.g. an in-process HTTP emulator the plugin talks to).
"""

import contextlib
import copy
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, Self

__all__ = [
    "DAEMON_MAX_LINE_BYTES",
    "MODEL_ACTION_SPECS",
    "SDK_HEARTBEAT_INTERVAL",
    "ActionSpec",
    "PluginProcess",
    "PluginProcessError",
    "PluginProtocolError",
    "PluginSessionError",
    "SessionResult",
    "SessionStream",
    "StdoutLineTooLongError",
    "build_envelope",
    "build_request_data",
    "daemon_rule_violations",
    "prompt_message",
]

# The daemon's stdout scanner buffer cap (PLUGIN_RUNTIME_MAX_BUFFER_SIZE, default 5242880).
# bufio.Scanner fails with ErrTooLong once its buffer is full without a newline in it,
# so a line is accepted only if line + "\n" fits: at most DAEMON_MAX_LINE_BYTES - 1 bytes
# of content.
DAEMON_MAX_LINE_BYTES: Final[int] = 5 * 1024 * 1024

# The SDK's heartbeat period when HEARTBEAT_INTERVAL is not set (dify_plugin's DifyPluginEnv). The
# daemon kills a plugin silent for 120 s; a plugin whose heartbeats are late by more than one period
# has a blocked gevent hub, which also freezes every other session of the process.
SDK_HEARTBEAT_INTERVAL: Final[float] = 10.0

# How much stderr we keep. The daemon keeps only 1 KiB; we keep more because it is the
# only place a crashing plugin's traceback shows up, but still bound it so a chatty
# plugin in a long load test cannot eat the test runner's memory.
_STDERR_KEEP_BYTES: Final[int] = 1024 * 1024
_STDERR_TAIL_CHARS: Final[int] = 4000

# Regex used only to attribute an oversized line to a session for the error message;
# parsing a >5 MiB line as JSON is exactly what the daemon refuses to do.
_SESSION_ID_RE: Final[re.Pattern[bytes]] = re.compile(rb'"session_id"\s*:\s*"([^"]{1,100})"')


# --------------------------------------------------------------------------- errors


class PluginSessionError(Exception):
    """The plugin answered a session with ``{"type": "error"}``.

    ``error_type`` is the exception class name the SDK reported (``type(e).__name__``),
    ``description`` is ``args.description`` (present for ``InvokeError`` subclasses), which
    is what Dify turns back into its own Invoke* exceptions.
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        description: str | None = None,
        *,
        session_id: str | None = None,
        action: str | None = None,
        error_args: Mapping[str, Any] | None = None,
        items: Sequence[dict[str, Any]] = (),
        ended: bool = True,
    ) -> None:
        self.error_type = error_type
        self.message = message
        self.description = description
        self.session_id = session_id
        self.action = action
        # Full ``args`` object (traceback, description): the traceback is the fastest way
        # to debug a failing plugin from a test report.
        self.error_args: dict[str, Any] = dict(error_args or {})
        # Stream items received before the error (mid-stream failures keep them).
        self.items: list[dict[str, Any]] = list(items)
        # False when the error came but no ``end`` followed before the timeout.
        self.ended = ended
        text = f"{error_type}: {message}"
        if description is not None and description != message:
            text += f" (description: {description})"
        if action is not None or session_id is not None:
            text += f" [action={action} session={session_id}]"
        if not ended:
            text += " [no end message before timeout]"
        super().__init__(text)

    @property
    def traceback(self) -> str | None:
        value = self.error_args.get("traceback")
        return value if isinstance(value, str) else None


class PluginProcessError(RuntimeError):
    """The plugin process is not usable: it exited, or never became ready."""

    def __init__(self, message: str, *, returncode: int | None, stderr_tail: str) -> None:
        self.returncode = returncode
        self.stderr_tail = stderr_tail
        super().__init__(f"{message} (exit code {returncode}); stderr tail:\n{stderr_tail or '<empty>'}")


class PluginProtocolError(RuntimeError):
    """The plugin broke the wire protocol in a way the daemon would not survive."""


class StdoutLineTooLongError(PluginProtocolError):
    """A stdout message exceeded the daemon's 5 MiB scanner limit.

    The real daemon stops reading stdout and kills the plugin at this point, so the
    driver does the same: the process is killed and every pending session fails.
    """

    def __init__(self, size_at_least: int, session_id: str | None) -> None:
        self.size_at_least = size_at_least
        self.session_id = session_id
        super().__init__(
            f"plugin wrote a stdout line of at least {size_at_least} bytes "
            f"(session {session_id}); the daemon's limit is {DAEMON_MAX_LINE_BYTES - 1} bytes "
            f"per line (PLUGIN_RUNTIME_MAX_BUFFER_SIZE={DAEMON_MAX_LINE_BYTES}), "
            "so the real daemon would kill the plugin here"
        )


# --------------------------------------------------------------------------- request building


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """What one model action needs in ``data``.

    ``required``: keys the SDK request model needs and that have no sensible default, so
    the caller must give them. ``defaults``: keys filled when missing, with the value the
    daemon would send (Go zero values, or what Dify always sends). ``model_type``: the
    ``model_type`` implied by the action (None when the caller must choose).
    """

    required: tuple[str, ...]
    defaults: Mapping[str, Any]
    model_type: str | None = None


_LLM_DEFAULTS: Final[Mapping[str, Any]] = {
    "credentials": {},
    # Dify always sends a dict; a Go nil map would be ``null`` and fail the SDK model.
    "model_parameters": {},
    # Required-but-nullable in the SDK (no default there): nil slices arrive as null.
    "tools": None,
    "stop": None,
    "json_schema": None,
    # Go bool is always marshalled; Dify's LLM node streams.
    "stream": True,
}

# Keyed by action. Derived from dify_plugin/core/entities/plugin/request.py (SDK 0.10.2)
# and pkg/entities/requests/model.go in the daemon.
MODEL_ACTION_SPECS: Final[Mapping[str, ActionSpec]] = {
    "validate_provider_credentials": ActionSpec(("provider",), {"credentials": {}}),
    "validate_model_credentials": ActionSpec(("provider", "model", "model_type"), {"credentials": {}}),
    "get_ai_model_schemas": ActionSpec(("provider", "model", "model_type"), {"credentials": {}}),
    "invoke_llm": ActionSpec(("provider", "model", "prompt_messages"), _LLM_DEFAULTS, "llm"),
    # start_polling: SDK pins stream=False; the daemon also sends workflow_run_id/node_id
    # (SDK ignores them, but keep the wire shape faithful).
    "start_polling": ActionSpec(
        ("provider", "model", "prompt_messages"),
        {**_LLM_DEFAULTS, "stream": False, "workflow_run_id": "test-workflow-run", "node_id": "test-node"},
        "llm",
    ),
    "check_polling": ActionSpec(
        ("provider", "model", "plugin_state"),
        {"credentials": {}, "workflow_run_id": "test-workflow-run", "node_id": "test-node"},
        "llm",
    ),
    # The daemon's RequestGetLLMNumTokens.MarshalJSON turns nil slices into [].
    "get_llm_num_tokens": ActionSpec(("provider", "model", "prompt_messages"), {"credentials": {}, "tools": []}, "llm"),
    "invoke_text_embedding": ActionSpec(
        ("provider", "model", "texts"), {"credentials": {}, "input_type": "document"}, "text-embedding"
    ),
    "invoke_multimodal_embedding": ActionSpec(
        ("provider", "model", "documents"), {"credentials": {}, "input_type": "document"}, "text-embedding"
    ),
    "get_text_embedding_num_tokens": ActionSpec(("provider", "model", "texts"), {"credentials": {}}, "text-embedding"),
    # Go float64/int without pointers: Dify's None arrives as 0.0 / 0.
    "invoke_rerank": ActionSpec(
        ("provider", "model", "query", "docs"), {"credentials": {}, "score_threshold": 0.0, "top_n": 0}, "rerank"
    ),
    "invoke_multimodal_rerank": ActionSpec(
        ("provider", "model", "query", "docs"), {"credentials": {}, "score_threshold": 0.0, "top_n": 0}, "rerank"
    ),
    "invoke_tts": ActionSpec(("provider", "model", "content_text", "voice", "tenant_id"), {"credentials": {}}, "tts"),
    # Go string: an unset language arrives as "" (SDK accepts str | None).
    "get_tts_model_voices": ActionSpec(("provider", "model"), {"credentials": {}, "language": ""}, "tts"),
    "invoke_speech2text": ActionSpec(("provider", "model", "file"), {"credentials": {}}, "speech2text"),
    "invoke_moderation": ActionSpec(("provider", "model", "text"), {"credentials": {}}, "moderation"),
}


def prompt_message(role: str, content: Any, **extra: Any) -> dict[str, Any]:
    """A prompt message in the shape the daemon forwards after re-marshalling it.

    Every message carries ``name: ""`` and ``tool_call_id: ""``; assistant messages need
    ``tool_calls: []`` (``null`` fails SDK validation), others get Go's nil-slice ``null``.
    """
    message: dict[str, Any] = {
        "role": role,
        "content": content,
        "name": "",
        "tool_calls": [] if role == "assistant" else None,
        "tool_call_id": "",
    }
    message.update(extra)
    return message


def chat_data(
    provider: str,
    model: str,
    credentials: Mapping[str, Any],
    text: str,
    *,
    stream: bool = True,
    model_parameters: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The ``data`` of an ``invoke_llm`` request carrying one user message."""
    return {
        "provider": provider,
        "model_type": "llm",
        "model": model,
        "credentials": dict(credentials),
        "prompt_messages": [prompt_message("user", text)],
        "model_parameters": dict(model_parameters or {}),
        "stream": stream,
        **extra,
    }


def _normalise_prompt_messages(messages: Any) -> Any:
    # Only touch well-formed input; anything else is passed through untouched so tests
    # can still probe how the SDK rejects malformed requests.
    if not isinstance(messages, list):
        return messages
    out: list[Any] = []
    for message in messages:
        if isinstance(message, Mapping) and "role" in message:
            base = prompt_message(str(message["role"]), message.get("content"))
            base.update(message)
            out.append(base)
        else:
            out.append(message)
    return out


def build_request_data(
    action: str,
    data: Mapping[str, Any],
    *,
    provider: str | None = None,
    model_type: str | None = None,
    user_id: str = "test-user",
    invoke_type: str = "model",
    fill_defaults: bool = True,
) -> dict[str, Any]:
    """Build the envelope's ``data`` for ``action``, as the daemon would.

    With ``fill_defaults`` (the default) and a model action, missing optional keys get
    the daemon's values (see :data:`MODEL_ACTION_SPECS`), prompt messages get the daemon's
    re-marshalled shape, a ``bytes`` speech2text ``file`` is hex-encoded, and missing
    required keys raise ``ValueError`` early, because the daemon would have rejected such a
    request before it reached the plugin. ``fill_defaults=False`` sends ``data`` verbatim
    (plus user_id/type/action), to exercise the SDK's own validation.
    """
    body: dict[str, Any] = {"user_id": user_id, "type": invoke_type, "action": action}
    body.update(copy.deepcopy(dict(data)))
    for key, value in (("provider", provider), ("model_type", model_type)):
        if value is None:
            continue
        if key in data and data[key] != value:
            msg = f"{key} given twice with different values: {data[key]!r} vs {value!r}"
            raise ValueError(msg)
        body[key] = value

    spec = MODEL_ACTION_SPECS.get(action) if invoke_type == "model" else None
    if not fill_defaults or spec is None:
        return body

    if spec.model_type is not None:
        body.setdefault("model_type", spec.model_type)
    for key, default in spec.defaults.items():
        if key not in body:
            body[key] = copy.deepcopy(default)
    if "prompt_messages" in body:
        body["prompt_messages"] = _normalise_prompt_messages(body["prompt_messages"])
    if action == "invoke_speech2text" and isinstance(body.get("file"), bytes | bytearray):
        body["file"] = bytes(body["file"]).hex()

    missing = [key for key in spec.required if key not in body]
    if missing:
        msg = f"{action}: missing required key(s) {missing} (pass fill_defaults=False to send anyway)"
        raise ValueError(msg)
    return body


def build_envelope(
    session_id: str | None, data: Mapping[str, Any], event: str = "request", invocation: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The daemon's stdin envelope (session_manager Session.Message), keys in its order.

    ``invocation`` gives the ids the daemon fills in for a call made inside a Dify app:
    ``app_id``, ``conversation_id``, ``message_id`` (absent ones stay null, as outside an app).
    """
    invocation = invocation or {}
    return {
        "session_id": session_id,
        "conversation_id": invocation.get("conversation_id"),
        "message_id": invocation.get("message_id"),
        "app_id": invocation.get("app_id"),
        "endpoint_id": None,
        "context": None,
        "event": event,
        "data": dict(data),
    }


# --------------------------------------------------------------------------- sessions


FrameKind = Literal["stream", "error", "end", "invoke", "dead", "fatal"]


@dataclass(frozen=True, slots=True)
class _Frame:
    kind: FrameKind
    data: Any
    at: float  # time.monotonic() when the reader thread saw it


@dataclass(slots=True)
class _SessionState:
    """Shared between the stdout reader (producer) and one consumer."""

    session_id: str
    action: str
    frames: "queue.SimpleQueue[_Frame]" = field(default_factory=queue.SimpleQueue)


@dataclass(slots=True)
class SessionResult:
    """Everything one session produced. ``error`` is set instead of raised."""

    session_id: str
    action: str
    sent_at: float
    items: list[dict[str, Any]] = field(default_factory=list)
    item_times: list[float] = field(default_factory=list)
    invokes: list[dict[str, Any]] = field(default_factory=list)
    error: PluginSessionError | None = None
    ended_at: float | None = None

    @property
    def time_to_first_item(self) -> float | None:
        """Seconds from writing the request to the first ``stream`` message arriving."""
        return self.item_times[0] - self.sent_at if self.item_times else None

    @property
    def duration(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.sent_at

    def raise_for_error(self) -> Self:
        if self.error is not None:
            raise self.error
        return self


class SessionStream(Iterator[dict[str, Any]]):
    """Iterator over one session's ``stream`` payloads, as they arrive.

    The request is already written when this object exists (so arrival timestamps are
    honest and nothing the plugin sends early is lost). Iteration ends at the ``end``
    message; a session ``error`` is raised as :class:`PluginSessionError` only after
    ``end`` (or at the deadline), mirroring "end is always sent last".
    """

    def __init__(self, plugin: "PluginProcess", state: _SessionState, sent_at: float, timeout: float) -> None:
        self._plugin = plugin
        self._state = state
        self.sent_at = sent_at
        self.timeout = timeout
        self.deadline = sent_at + timeout
        self.result = SessionResult(session_id=state.session_id, action=state.action, sent_at=sent_at)
        self._done = False
        # False: items are handed to the iterating caller but not kept in `result` (a flood of a
        # million chunks need not be held in the test's memory).
        self.keep_items = True

    @property
    def session_id(self) -> str:
        return self._state.session_id

    @property
    def action(self) -> str:
        return self._state.action

    @property
    def item_times(self) -> list[float]:
        return self.result.item_times

    @property
    def time_to_first_item(self) -> float | None:
        return self.result.time_to_first_item

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> dict[str, Any]:
        item = self._next_item(raise_session_error=True)
        if item is None:
            raise StopIteration
        return item

    def collect(self) -> SessionResult:
        """Drain the session; a session error is stored in the result, not raised."""
        while self._next_item(raise_session_error=False) is not None:
            pass
        return self.result

    def close(self) -> None:
        """Stop listening (e.g. after breaking out early); later messages become orphans."""
        if not self._done:
            self._done = True
            self._plugin._unregister(self._state.session_id)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _next_item(self, *, raise_session_error: bool) -> dict[str, Any] | None:
        if self._done:
            return None
        while True:
            remaining = self.deadline - time.monotonic()
            try:
                frame = self._state.frames.get(timeout=max(remaining, 0.0))
            except queue.Empty:
                self.close()
                if self.result.error is not None:
                    # The error is the real news; say the end never came.
                    err = self.result.error
                    self.result.error = PluginSessionError(
                        err.error_type,
                        err.message,
                        err.description,
                        session_id=err.session_id,
                        action=err.action,
                        error_args=err.error_args,
                        items=err.items,
                        ended=False,
                    )
                    if raise_session_error:
                        raise self.result.error from None
                    return None
                msg = (
                    f"plugin session {self.session_id} (action {self.action!r}) got no end message "
                    f"within {self.timeout:g}s; {len(self.result.items)} stream item(s) received"
                )
                raise TimeoutError(msg) from None

            if frame.kind == "stream":
                if self.keep_items:
                    self.result.items.append(frame.data)
                    self.result.item_times.append(frame.at)
                return frame.data
            if frame.kind == "invoke":
                # Backwards invocation (plugin -> Dify). We are not Dify: record it. The
                # plugin will wait for a backwards_response (see PluginProcess.send_raw).
                self.result.invokes.append(frame.data)
                continue
            if frame.kind == "error":
                data = frame.data if isinstance(frame.data, Mapping) else {}
                args = data.get("args") if isinstance(data.get("args"), Mapping) else {}
                description = args.get("description")
                self.result.error = PluginSessionError(
                    str(data.get("error_type", "")),
                    str(data.get("message", "")),
                    description if isinstance(description, str) else None,
                    session_id=self.session_id,
                    action=self.action,
                    error_args=args,
                    items=self.result.items,
                )
                continue
            if frame.kind == "end":
                self.result.ended_at = frame.at
                self._done = True  # the reader already dropped the session on "end"
                if self.result.error is not None and raise_session_error:
                    raise self.result.error
                return None
            # "dead" / "fatal": the process is gone; nothing more will come.
            self._done = True
            raise self._plugin._failure_for(self.session_id, self.action, self.result.error)


# --------------------------------------------------------------------------- the process


class PluginProcess:
    """A plugin subprocess spoken to exactly like the daemon's local runtime.

    Create with :meth:`start`; always close (``with`` does it). Attributes filled by the
    reader threads: :attr:`manifest`, :attr:`logs`, :attr:`plugin_errors`,
    :attr:`non_json_lines`, :attr:`unrecognized_messages`, :attr:`orphan_messages`,
    :attr:`heartbeat_times`.

    Heartbeats are timed as the daemon sees them (when their line is read): see
    :meth:`heartbeat_gaps_in_service` and :attr:`heartbeat_gap_bound`, which
    :func:`daemon_rule_violations` holds every process to.
    """

    def __init__(
        self,
        proc: "subprocess.Popen[bytes]",
        spawned_at: float,
        plugin_dir: Path,
        heartbeat_interval: float = SDK_HEARTBEAT_INTERVAL,
    ) -> None:
        # Use start(); __init__ only wires state so the reader threads can run.
        self._proc = proc
        self.plugin_dir = plugin_dir
        self.spawned_at = spawned_at
        self.pid = proc.pid
        self.heartbeat_interval = heartbeat_interval
        # The longest silence between heartbeats the process is allowed once in service: twice the
        # interval. A test that silences the plugin on purpose (SIGSTOP, a probe that blocks) sets
        # it to None.
        self.heartbeat_gap_bound: float | None = 2 * heartbeat_interval

        self._lock = threading.Lock()  # guards every collection below
        # One writer at a time: concurrent request lines must not interleave.
        self._write_lock = threading.Lock()
        self._sessions: dict[str, _SessionState] = {}
        self._ready = threading.Event()  # first heartbeat seen
        self._stopped = threading.Event()  # stdout reached EOF / reading stopped

        self.manifest: dict[str, Any] | None = None
        self.logs: list[dict[str, Any]] = []
        self.plugin_errors: list[dict[str, Any]] = []
        self.non_json_lines: list[str] = []
        self.unrecognized_messages: list[dict[str, Any]] = []
        self.orphan_messages: list[dict[str, Any]] = []
        self.heartbeat_times: list[float] = []
        self.fatal_error: PluginProtocolError | None = None
        self._fatal_reported = False
        self._gap_reported = False
        self._first_end_at: float | None = None  # when the first session ended
        self._stopped_at: float | None = None  # when the process was closed or seen dead
        self._closed = False
        self._close_reason: str | None = None
        self._stderr = bytearray()
        self._stderr_dropped = 0

        self._stdout_thread = threading.Thread(target=self._read_stdout, name=f"plugin-stdout-{proc.pid}", daemon=True)
        self._stderr_thread = threading.Thread(target=self._read_stderr, name=f"plugin-stderr-{proc.pid}", daemon=True)
        self._stderr_thread.start()
        self._stdout_thread.start()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(
        cls,
        plugin_dir: Path,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        ready_timeout: float = 30.0,
        *,
        entrypoint: str = "main",
        inherit_env: bool = True,
    ) -> "PluginProcess":
        """Spawn ``python -m entrypoint`` in ``plugin_dir`` and wait for the first heartbeat.

        The environment is ours (the daemon passes its own) updated with ``env``, plus
        ``INSTALL_METHOD=local`` which is what puts the SDK into stdio mode. Note the SDK
        also reads ``<plugin_dir>/.env``; real env vars win over it.
        """
        plugin_dir = Path(plugin_dir)
        full_env: dict[str, str] = dict(os.environ) if inherit_env else {}
        full_env.update(env or {})
        full_env["INSTALL_METHOD"] = "local"

        spawned_at = time.monotonic()
        proc = subprocess.Popen(
            [python, "-m", entrypoint],
            cwd=plugin_dir,
            env=full_env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,  # so concurrent plugin processes never hold each other's pipes
        )
        interval = float(full_env.get("HEARTBEAT_INTERVAL") or SDK_HEARTBEAT_INTERVAL)
        plugin = cls(proc, spawned_at, plugin_dir, interval)
        with _WATCHED_LOCK:
            _WATCHED.append(plugin)
        try:
            plugin._wait_ready(ready_timeout)
        except BaseException:
            plugin.close()
            raise
        return plugin

    def _wait_ready(self, ready_timeout: float) -> None:
        deadline = self.spawned_at + ready_timeout
        while not self._ready.is_set():
            if self._stopped.is_set():
                # Startup failures (bad YAML, import errors) write only to stderr.
                self._stderr_thread.join(timeout=2.0)
                raise PluginProcessError(
                    "plugin exited before its first heartbeat",
                    returncode=self._proc.poll(),
                    stderr_tail=self.stderr_tail(),
                )
            if time.monotonic() >= deadline:
                msg = (
                    f"plugin sent no heartbeat within {ready_timeout:g}s "
                    f"(the daemon waits 120s); stderr tail:\n{self.stderr_tail() or '<empty>'}"
                )
                raise TimeoutError(msg)
            self._ready.wait(timeout=0.05)

    @property
    def startup_seconds_to_heartbeat(self) -> float:
        """Seconds from spawn to the first heartbeat (the daemon's 'ready')."""
        with self._lock:
            if not self.heartbeat_times:
                msg = "no heartbeat received yet"
                raise RuntimeError(msg)
            return self.heartbeat_times[0] - self.spawned_at

    @property
    def returncode(self) -> int | None:
        return self._proc.poll()

    def is_alive(self) -> bool:
        return self._proc.poll() is None and not self._stopped.is_set()

    def close(self, grace: float = 2.0) -> None:
        """Terminate the plugin and join the reader threads. Idempotent.

        We cannot just close stdin and wait: on EOF the SDK's stdin reader spins at 100%
        CPU forever (``if not data: continue``), and its parent watchdog only fires when
        the parent becomes PID 1. So: SIGTERM, SIGKILL after ``grace``, reap, then close
        stdin and join the threads (they end at the pipes' EOF).
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopped_at = self._stopped_at or time.monotonic()
            if self._close_reason is None:
                self._close_reason = "PluginProcess.close() was called"
        proc = self._proc
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                proc.kill()
            except ProcessLookupError:
                pass  # exited between poll() and the signal
        try:
            proc.wait(timeout=10.0)  # reap: no zombies
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10.0)
        with contextlib.suppress(OSError, ValueError):
            if proc.stdin is not None:
                proc.stdin.close()  # may flush into a dead pipe: EPIPE is expected
        readers = ((self._stdout_thread, proc.stdout), (self._stderr_thread, proc.stderr))
        for thread, stream in readers:
            if thread is not threading.current_thread():
                # They end at the pipes' EOF. A grandchild holding the pipes open could
                # keep one alive; it is a daemon thread, so at worst it dies with us.
                thread.join(timeout=5.0)
            # Never close a pipe under a thread still blocked reading it.
            if stream is not None and not thread.is_alive():
                with contextlib.suppress(OSError):
                    stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        # An oversized line is fatal in production even if no session noticed it (e.g. a
        # huge log line): make sure the test does not pass silently.
        if exc_type is None and self.fatal_error is not None and not self._fatal_reported:
            self._fatal_reported = True
            raise self.fatal_error

    def threads_alive(self) -> list[str]:
        """Names of this driver's reader threads still running (empty after close())."""
        return [t.name for t in (self._stdout_thread, self._stderr_thread) if t.is_alive()]

    # ------------------------------------------------------------------ requests

    def stream(
        self,
        action: str,
        data: Mapping[str, Any],
        *,
        model_type: str | None = None,
        provider: str | None = None,
        timeout: float = 60.0,
        fill_defaults: bool = True,
        user_id: str = "test-user",
        invoke_type: str = "model",
        session_id: str | None = None,
        invocation: Mapping[str, str] | None = None,
    ) -> SessionStream:
        """Send one request now; iterate the result to get each ``stream`` payload as it arrives."""
        body = build_request_data(
            action,
            data,
            provider=provider,
            model_type=model_type,
            user_id=user_id,
            invoke_type=invoke_type,
            fill_defaults=fill_defaults,
        )
        sid = session_id or str(uuid.uuid4())
        state = _SessionState(session_id=sid, action=action)
        with self._lock:
            self._raise_if_unusable(sid, action)
            if sid in self._sessions:
                msg = f"session id {sid} is already in use"
                raise ValueError(msg)
            # Register before writing: a fast plugin may answer before write() returns.
            self._sessions[sid] = state
        sent_at = time.monotonic()
        try:
            self.send_raw(build_envelope(sid, body, invocation=invocation))
        except BaseException:
            self._unregister(sid)
            raise
        return SessionStream(self, state, sent_at, timeout)

    def request(
        self,
        action: str,
        data: Mapping[str, Any],
        *,
        model_type: str | None = None,
        provider: str | None = None,
        timeout: float = 60.0,
        fill_defaults: bool = True,
        user_id: str = "test-user",
        invoke_type: str = "model",
        invocation: Mapping[str, str] | None = None,
    ) -> list[dict[str, Any]]:
        """Run one session to its end; return all ``stream`` payloads in order.

        Raises :class:`PluginSessionError` (after ``end``) if the plugin reported an error,
        ``TimeoutError`` if no ``end`` came within ``timeout`` seconds, and
        :class:`PluginProcessError` / :class:`PluginProtocolError` if the process died or
        broke the protocol.
        """
        with self.stream(
            action,
            data,
            model_type=model_type,
            provider=provider,
            timeout=timeout,
            fill_defaults=fill_defaults,
            user_id=user_id,
            invoke_type=invoke_type,
            invocation=invocation,
        ) as session:
            return list(session)

    def collect(
        self,
        action: str,
        data: Mapping[str, Any],
        *,
        model_type: str | None = None,
        provider: str | None = None,
        timeout: float = 60.0,
        fill_defaults: bool = True,
        user_id: str = "test-user",
        invoke_type: str = "model",
    ) -> SessionResult:
        """Like :meth:`request` but returns items, timings and any session error together."""
        with self.stream(
            action,
            data,
            model_type=model_type,
            provider=provider,
            timeout=timeout,
            fill_defaults=fill_defaults,
            user_id=user_id,
            invoke_type=invoke_type,
        ) as session:
            return session.collect()

    def send_raw(self, message: Mapping[str, Any] | str | bytes) -> None:
        """Write one stdin line as-is (a dict is JSON-encoded). For protocol edge tests.

        JSON is written compactly and as UTF-8 like Go's encoder; ``json.dumps`` escapes
        control characters, so an encoded object never contains a raw newline.
        """
        if isinstance(message, Mapping):
            line = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()
        elif isinstance(message, str):
            line = message.encode()
        else:
            line = bytes(message)
        if b"\n" in line:
            msg = "a stdin message must be a single line"
            raise ValueError(msg)
        stdin = self._proc.stdin
        if stdin is None:
            msg = "stdin is not a pipe"
            raise RuntimeError(msg)
        with self._write_lock:
            try:
                stdin.write(line + b"\n")
                stdin.flush()
            except (BrokenPipeError, ValueError, OSError) as e:
                # ValueError: the pipe was closed by close(). Report why, with stderr.
                self._stopped.wait(timeout=2.0)
                raise self._failure_for(None, None, None) from e

    # ------------------------------------------------------------------ observations

    @property
    def heartbeats(self) -> int:
        with self._lock:
            return len(self.heartbeat_times)

    def heartbeat_gaps(self, *, include_current: bool = False) -> list[float]:
        """Seconds between consecutive heartbeats (first one counted from spawn).

        With ``include_current``, the time since the last heartbeat is appended, so a stall
        that is still going on shows up. The daemon kills a plugin silent for >120 s.
        """
        with self._lock:
            times = [self.spawned_at, *self.heartbeat_times]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        if include_current:
            gaps.append(time.monotonic() - times[-1])
        return gaps

    def heartbeat_gaps_in_service(self) -> list[float]:
        """Seconds between heartbeats once the plugin is in service, and the silence since the last.

        In service means from the first heartbeat after the first session ended: start-up, LiteLLM's
        import included (it blocks the hub for ~2 s right after the first heartbeat), is over by
        then. The silence after the last heartbeat counts up to now, or to when the process stopped.
        Empty before then.
        """
        with self._lock:
            first_end, stopped_at = self._first_end_at, self._stopped_at
            times = [t for t in self.heartbeat_times if first_end is not None and t > first_end]
        if not times:
            return []
        gaps = [b - a for a, b in itertools.pairwise(times)]
        gaps.append((stopped_at or time.monotonic()) - times[-1])
        return gaps

    @property
    def max_heartbeat_gap(self) -> float:
        """The longest of :meth:`heartbeat_gaps_in_service` (0.0 before the plugin is in service)."""
        return max(self.heartbeat_gaps_in_service(), default=0.0)

    def wait_for_heartbeats(self, count: int, timeout: float) -> None:
        """Block until at least ``count`` heartbeats were seen in total."""
        deadline = time.monotonic() + timeout
        while self.heartbeats < count:
            if time.monotonic() >= deadline:
                msg = f"only {self.heartbeats} heartbeat(s) after {timeout:g}s, wanted {count}"
                raise TimeoutError(msg)
            if self._stopped.is_set():
                raise self._failure_for(None, None, None)
            time.sleep(0.01)

    def stderr_text(self) -> str:
        """What the process wrote to stderr so far (bounded to the last ~1 MiB)."""
        with self._lock:
            text = bytes(self._stderr).decode("utf-8", errors="replace")
            dropped = self._stderr_dropped
        return f"[... {dropped} earlier bytes dropped ...]\n{text}" if dropped else text

    def stderr_tail(self, chars: int = _STDERR_TAIL_CHARS) -> str:
        return self.stderr_text()[-chars:]

    def pending_sessions(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    # ------------------------------------------------------------------ internals

    def _unregister(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def _raise_if_unusable(self, session_id: str, action: str) -> None:
        # Caller holds self._lock.
        if self.fatal_error is not None:
            self._fatal_reported = True
            raise self.fatal_error
        if self._closed or self._stopped.is_set():
            raise self._failure_for_locked(session_id, action, None)

    def _failure_for(
        self, session_id: str | None, action: str | None, session_error: PluginSessionError | None
    ) -> Exception:
        with self._lock:
            return self._failure_for_locked(session_id, action, session_error)

    def _failure_for_locked(
        self, session_id: str | None, action: str | None, session_error: PluginSessionError | None
    ) -> Exception:
        if self.fatal_error is not None:
            self._fatal_reported = True
            return self.fatal_error
        where = f" during session {session_id} (action {action!r})" if session_id else ""
        reason = self._close_reason or "plugin process exited"
        if session_error is not None:
            reason += f"; the session had already reported {session_error}"
        err = PluginProcessError(
            f"{reason}{where}",
            returncode=self._proc.poll(),
            stderr_tail=bytes(self._stderr).decode("utf-8", errors="replace")[-_STDERR_TAIL_CHARS:],
        )
        return err

    def _read_stderr(self) -> None:
        stream = self._proc.stderr
        if stream is None:
            return
        while True:
            # Go through the file object, never os.read(fd): if the test process imported
            # dify_plugin (gevent monkey-patching), Popen is gevent's and its pipes are
            # non-blocking, so a raw os.read would fail with EAGAIN instead of waiting.
            try:
                chunk = stream.read1(65536)
            except (OSError, ValueError):
                return
            if not chunk:
                return
            with self._lock:
                self._stderr += chunk
                excess = len(self._stderr) - _STDERR_KEEP_BYTES
                if excess > 0:
                    del self._stderr[:excess]
                    self._stderr_dropped += excess

    def _read_stdout(self) -> None:
        stream = self._proc.stdout
        assert stream is not None
        try:
            while True:
                # readline(limit) mirrors the Go scanner's bounded buffer: a line that
                # does not end within DAEMON_MAX_LINE_BYTES bytes (newline included) is
                # exactly the one bufio.Scanner rejects with ErrTooLong.
                try:
                    raw = stream.readline(DAEMON_MAX_LINE_BYTES)
                except (OSError, ValueError):
                    break
                if not raw:
                    break  # EOF: the process exited (or closed stdout)
                now = time.monotonic()
                if len(raw) >= DAEMON_MAX_LINE_BYTES and not raw.endswith(b"\n"):
                    self._on_oversized_line(raw)
                    break
                line = raw.rstrip(b"\r\n")
                if line.strip():
                    self._dispatch_line(line, now)
        finally:
            self._on_stdout_closed()

    def _on_oversized_line(self, head: bytes) -> None:
        match = _SESSION_ID_RE.search(head[:4096])
        sid = match.group(1).decode(errors="replace") if match else None
        error = StdoutLineTooLongError(len(head), sid)
        with self._lock:
            self.fatal_error = error
            self._stopped_at = self._stopped_at or time.monotonic()
            self._close_reason = str(error)
        # Like the daemon: stop reading and kill the plugin.
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()

    def _on_stdout_closed(self) -> None:
        # Reap first so error messages carry the exit code, and let stderr drain so they
        # carry the traceback too.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5.0)
        self._stderr_thread.join(timeout=2.0)
        now = time.monotonic()
        with self._lock:
            self._stopped.set()
            self._stopped_at = self._stopped_at or now
            pending = list(self._sessions.values())
            self._sessions.clear()
            kind: FrameKind = "fatal" if self.fatal_error is not None else "dead"
        for state in pending:
            state.frames.put(_Frame(kind, None, now))

    def _dispatch_line(self, line: bytes, now: float) -> None:
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            # The daemon logs these as parse errors and drops them; keep them visible.
            with self._lock:
                self.non_json_lines.append(line.decode("utf-8", errors="replace"))
            return

        event = message.get("event")
        if event is None:
            with self._lock:
                if self.manifest is None:
                    # The SDK prints the manifest (PluginConfiguration) first in local mode.
                    self.manifest = message
                else:
                    self.unrecognized_messages.append(message)
            return
        if event == "heartbeat":
            with self._lock:
                self.heartbeat_times.append(now)
            self._ready.set()
            return
        if event == "log":
            data = message.get("data")
            with self._lock:
                self.logs.append(data if isinstance(data, dict) else {"raw": data})
            return
        if event == "error":
            # Plugin-level error. The daemon logs it and does NOT route it to a session,
            # even when session_id is set (the SDK's router does set it on a TypeError).
            with self._lock:
                self.plugin_errors.append(message)
            return
        if event == "session":
            self._dispatch_session_message(message, now)
            return
        with self._lock:
            self.unrecognized_messages.append(message)

    def _dispatch_session_message(self, message: dict[str, Any], now: float) -> None:
        sid = message.get("session_id")
        body = message.get("data")
        kind = body.get("type") if isinstance(body, dict) else None
        payload = body.get("data") if isinstance(body, dict) else None
        with self._lock:
            state = self._sessions.get(sid) if isinstance(sid, str) else None
            if state is None or kind not in ("stream", "error", "end", "invoke"):
                # Unknown/finished/timed-out session, or a malformed message: keep it.
                self.orphan_messages.append(message)
                return
            if kind == "end":
                # Drop the session here, in the reader, so anything after "end" is orphaned
                # even if the consumer has not caught up yet.
                del self._sessions[sid]
                self._first_end_at = self._first_end_at or now
        state.frames.put(_Frame(kind, payload, now))


# --------------------------------------------------------------------------- the daemon's rules

_WATCHED: list[PluginProcess] = []
_WATCHED_LOCK = threading.Lock()


def daemon_rule_violations() -> list[str]:
    """What the daemon would not have taken from the plugin processes started so far.

    A stdout line over its limit (the driver killed the process, as the daemon does) that no
    request raised to the caller, and heartbeats silent for longer than a process's
    :attr:`~PluginProcess.heartbeat_gap_bound` while in service. Each is reported once; a
    closed process is checked one last time and then forgotten. tests/conftest.py calls this
    after every test, so every stdio test is held to these rules.
    """
    problems: list[str] = []
    with _WATCHED_LOCK:
        watched = list(_WATCHED)
    for plugin in watched:
        with plugin._lock:
            closed = plugin._closed or plugin._stopped.is_set()
            fatal = plugin.fatal_error if not plugin._fatal_reported else None
            plugin._fatal_reported = plugin._fatal_reported or fatal is not None
        if fatal is not None:
            problems.append(f"plugin pid {plugin.pid}: {fatal}")
        bound = plugin.heartbeat_gap_bound
        if bound is not None and not plugin._gap_reported and (gap := plugin.max_heartbeat_gap) > bound:
            plugin._gap_reported = True
            problems.append(
                f"plugin pid {plugin.pid}: no heartbeat for {gap:.2f} s while in service, over the "
                f"{bound:g} s allowed (twice HEARTBEAT_INTERVAL={plugin.heartbeat_interval:g} s): its gevent "
                "hub was blocked, and with it every other session"
            )
        if closed:
            with _WATCHED_LOCK:
                _WATCHED.remove(plugin)
    return problems
