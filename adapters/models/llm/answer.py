"""Translates the gateway's chat answers, read by the route's dialect, into Dify's LLMResult and stream chunks.

Three things Dify needs that the wire does not give directly:
- reasoning is shown as thinking, wrapped in `<think>` … `</think>`;
- streamed tool-call fragments are assembled, so every tool call Dify receives is complete (Dify's
  agent runner concatenates tool calls across chunks; it does not merge fragments);
- a content-security block (model `from-security-guard`) reaches the user as the deny text, marked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from dify_plugin.entities.model.llm import LLMResult, LLMResultChunk, LLMResultChunkDelta, LLMUsage
from dify_plugin.entities.model.message import AssistantPromptMessage
from dify_plugin.errors.model import InvokeBadRequestError, InvokeError

from adapters.catalog.loader import CatalogModel
from adapters.dialects.answers import SECURITY_GUARD_MODEL, unreadable
from adapters.dialects.kinds import ChatAnswer, ChatDialect, TokenCounts
from adapters.engine.litellm_facade import ChatTurn, ToolCallPart
from adapters.gateway.errors import error_from_event, stream_error
from adapters.gateway.limits import STREAM_TEXT_LIMIT
from adapters.gateway.sse import EventStream
from adapters.message_size import text_pieces
from adapters.models.llm.chunk_size import closing_chunks

BLOCK_MARK = "[Blocked by AI Gateway content security]"

UsageFn = Callable[[TokenCounts, str], LLMUsage]  # the gateway's counts (None where it sent none), the text
ToolCall = AssistantPromptMessage.ToolCall


_BLOCKED = "The request or the answer was blocked."


def _lower_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in data.items()}


def deny_text(raw: str | None) -> str:
    """The marked, readable form of a content-security block.

    Higress' ai-security-guard sends either a plain deny text or, since its DenyResponseBody
    (alibaba/higress#3642), JSON with capitalised keys: {"blockedDetails": [{"Suggestion", "Type",
    "Level"}], "requestId", "guardCode"}. Keys are read case-blind, so both spellings work; the
    risk type and level say why, and the request id is what the gateway operator looks up.
    """
    try:
        data = json.loads(raw or "")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return f"{BLOCK_MARK} {raw or _BLOCKED}"
    fields = _lower_keys(data)
    message = fields.get("denymessage") or fields.get("message") or _BLOCKED
    details = [f"code {fields['code']}"] if fields.get("code") else []
    for item in fields.get("blockeddetails") or []:
        if isinstance(item, dict):
            item = _lower_keys(item)
            details.append(f"{item.get('type', '?')}/{item.get('level', '?')}")
    if request_id := fields.get("requestid") or fields.get("request_id"):
        details.append(f"request id {request_id}")
    return f"{BLOCK_MARK} {message}" + (f" ({', '.join(details)})" if details else "")


class ThinkingWrapper:
    """Wraps streamed reasoning in one `<think>` block that closes when the answer starts."""

    def __init__(self) -> None:
        self.open = False

    def feed(self, reasoning: str | None, content: str | None) -> str:
        text = ""
        if reasoning:
            text = reasoning if self.open else "<think>\n" + reasoning
            self.open = True
        if content:
            text += self.close() + content
        return text

    def close(self) -> str:
        if not self.open:
            return ""
        self.open = False
        return "\n</think>"


class ToolCallAssembler:
    """Collects streamed tool-call fragments by index until the stream has finished."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, fragments: tuple[ToolCallPart, ...]) -> None:
        for position, fragment in enumerate(fragments):
            index = fragment.index if fragment.index is not None else position
            call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            call["id"] = call["id"] or (fragment.id or "")
            # Some backends repeat the name in every fragment; it is set once, never concatenated.
            call["name"] = call["name"] or (fragment.name or "")
            call["arguments"] += fragment.arguments or ""

    def complete(self) -> list[ToolCall]:
        return [
            ToolCall(
                id=call["id"] or f"call_{index}",
                type="function",
                function=ToolCall.ToolCallFunction(name=call["name"], arguments=call["arguments"] or "{}"),
            )
            for index, call in sorted(self._calls.items())
        ]


def _tool_calls(turn: ChatTurn) -> list[ToolCall]:
    return [
        ToolCall(
            id=c.id or f"call_{i}",
            type="function",
            function=ToolCall.ToolCallFunction(name=c.name or "", arguments=c.arguments or "{}"),
        )
        for i, c in enumerate(turn.tool_calls)
    ]


def blocking_result(model: CatalogModel, answer: ChatAnswer, usage_for: UsageFn) -> LLMResult:
    turn = answer.turn
    content = turn.content or ""
    if answer.model == SECURITY_GUARD_MODEL:
        content = deny_text(content)
    elif turn.reasoning:
        content = f"<think>\n{turn.reasoning}\n</think>{content}"
    return LLMResult(
        model=model.name,
        message=AssistantPromptMessage(content=content, tool_calls=_tool_calls(turn)),
        usage=usage_for(answer.usage, content),
        system_fingerprint=answer.system_fingerprint,
    )


def result_as_stream(model: CatalogModel, result: LLMResult) -> Iterator[LLMResultChunk]:
    """A blocking answer relayed as a stream (for backends that cannot stream tool calls): one chunk,
    unless it is too large for one message to the daemon."""
    content = result.message.content if isinstance(result.message.content, str) else ""
    yield from closing_chunks(model, 0, content, result.message.tool_calls, result.usage, "stop")


def collect_stream(model: CatalogModel, chunks: Iterator[LLMResultChunk]) -> LLMResult:
    """One blocking answer from a relayed stream (for models the upstream only streams)."""
    parts: list[str] = []
    tool_calls: list[ToolCall] = []
    usage: LLMUsage | None = None
    for chunk in chunks:
        parts.append(chunk.delta.message.content or "")
        tool_calls += chunk.delta.message.tool_calls
        usage = chunk.delta.usage or usage
    assert usage is not None, "relay_stream always ends with a usage chunk"
    return LLMResult(
        model=model.name, message=AssistantPromptMessage(content="".join(parts), tool_calls=tool_calls), usage=usage
    )


def relay_stream(
    model: CatalogModel, dialect: ChatDialect, response: httpx.Response, route_path: str, usage_for: UsageFn
) -> Iterator[LLMResultChunk]:
    """Dify chunks from an SSE answer; the caller maps errors and closes the response."""
    thinking, tools = ThinkingWrapper(), ToolCallAssembler()
    produced: list[str] = []
    kept = 0  # characters of text and tool-call arguments held for the last chunk (STREAM_TEXT_LIMIT)
    usage: TokenCounts | None = None
    finish_reason: str | None = None
    index = 0
    events = EventStream(response, route_path)
    for number, data in enumerate(events, start=1):
        if "error" in data:
            raise error_from_event(route_path, data)
        # try/except, not `with unusable_answer(...)`: a context manager per chunk cost 4 us (timeit).
        try:
            chunk = dialect.parse_chunk(data)
            usage = chunk.usage or usage
            turn = chunk.turn
            if turn is None:
                continue
            if turn.content and chunk.model == SECURITY_GUARD_MODEL:
                text = thinking.close() + ("\n\n" if produced else "") + deny_text(turn.content)
            else:
                text = thinking.feed(turn.reasoning, turn.content)
            if turn.tool_calls:
                tools.add(turn.tool_calls)
                kept += sum(len(part.arguments or "") for part in turn.tool_calls)
            finish_reason = turn.finish_reason or finish_reason
        except InvokeError:
            raise
        except Exception as exc:
            raise unreadable(route_path, f"event {number}", exc) from exc
        kept += len(text)
        if kept > STREAM_TEXT_LIMIT:
            response.close()
            raise InvokeBadRequestError(
                f"The stream from {route_path} brought more than {STREAM_TEXT_LIMIT:,} characters of answer, "
                "reasoning and tool-call arguments, the most the plugin keeps for one answer; the connection "
                "was closed."
            )
        if text:
            produced.append(text)
            for piece in text_pieces(text):  # one piece unless the delta is megabytes long
                # tool_calls given: pydantic deep-copies a mutable default, ~2 us per chunk.
                message = AssistantPromptMessage(content=piece, tool_calls=[])
                yield LLMResultChunk(model=model.name, delta=LLMResultChunkDelta(index=index, message=message))
                index += 1
    if not events.done and (finish_reason is None or usage is None):
        # Without [DONE] the answer is whole only if its end arrived: a finish reason, then the
        # usage the request always asks for (stream_options.include_usage). vLLM and Higress'
        # ai-proxy in some modes never send [DONE]; a cut connection sends neither.
        missing = "a finish_reason" if finish_reason is None else "the usage chunk"
        raise stream_error(
            route_path, f"the connection closed before [DONE] and before {missing}; the answer is incomplete"
        )
    usage = usage or TokenCounts(None, None)
    tail = thinking.close()
    total = usage_for(usage, "".join(produced) + tail)
    yield from closing_chunks(model, index, tail, tools.complete(), total, finish_reason or "stop")
