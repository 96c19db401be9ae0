"""Translates Dify LLM calls into chat or completion requests on the gateway's routes, in the route's dialect.

The request is sent eagerly inside `_invoke`, so an HTTP error before the first byte is raised
synchronously; errors while streaming are mapped here too, because the SDK does not map errors
raised inside the generator it relays.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Mapping, Sequence
from typing import Any

import httpx
from dify_plugin.entities.model.llm import LLMResult, LLMResultChunk, LLMUsage
from dify_plugin.entities.model.message import PromptMessage, PromptMessageTool, UserPromptMessage
from dify_plugin.interfaces.model.large_language_model import LargeLanguageModel

from adapters.catalog.loader import CatalogModel, default_catalog
from adapters.catalog.resolver import resolve_model
from adapters.dialects.kinds import ChatDialect, TokenCounts
from adapters.dialects.registry import dialect
from adapters.gateway.body import finished
from adapters.gateway.transport import GatewaySession, session_for
from adapters.models.base import GatewayModel, bad_request
from adapters.models.invocation_headers import llm_headers
from adapters.models.llm.answer import UsageFn, blocking_result, collect_stream, relay_stream, result_as_stream
from adapters.models.llm.chunk_size import deliverable
from adapters.models.llm.request import build_chat_request, to_openai_messages
from adapters.models.llm.streaming import plan_streaming
from adapters.models.usage import estimate_tokens, llm_usage
from adapters.models.validation import check_credentials


class AIGatewayLargeLanguageModel(GatewayModel, LargeLanguageModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        model_parameters: dict,
        tools: list[PromptMessageTool] | None = None,
        stop: list[str] | None = None,
        stream: bool = True,
        user: str | None = None,
    ) -> LLMResult | Generator[LLMResultChunk, None, None]:
        target = resolve_model("llm", model, credentials)
        if not prompt_messages:
            raise bad_request(target, "there are no messages to send.")
        streaming = plan_streaming(target.info, dify_stream=stream, with_tools=bool(tools))
        body = build_chat_request(
            target, default_catalog(), prompt_messages, model_parameters, tools, stop, streaming.on_wire
        )
        session = session_for(credentials)
        budget = session.budget("llm")
        extra, own = llm_headers(target, session, model_parameters, user)
        response = session.send(
            target.route.path, json=body, stream=streaming.on_wire, budget=budget, extra_headers=extra, own_headers=own
        )
        usage_for = self._usage_counter(target, body, prompt_messages)
        wire = dialect(ChatDialect, target.route.dialect)
        if streaming.on_wire and response.headers.get("content-type", "").startswith("text/event-stream"):
            chunks = self._relay(target, wire, session, response, usage_for)
            return chunks if streaming.to_dify else deliverable(target, collect_stream(target, chunks))
        if streaming.on_wire:
            # A stream request answered with plain JSON (some gateway plugins do): read it as one answer.
            response = finished(response, budget.answer_limit, budget.answers)
        with session.reading(response):
            answer = wire.parse_answer(response)
        result = blocking_result(target, answer, usage_for)
        return result_as_stream(target, result) if streaming.to_dify else deliverable(target, result)

    def _relay(
        self,
        target: CatalogModel,
        wire: ChatDialect,
        session: GatewaySession,
        response: httpx.Response,
        usage_for: UsageFn,
    ) -> Generator[LLMResultChunk, None, None]:
        # The SDK relays this generator without mapping its errors, so they are reported here.
        try:
            with session.reporting(response.request):
                try:
                    yield from relay_stream(target, wire, response, response.request.url.path, usage_for)
                except Exception as exc:
                    session.log_broken_answer(response, exc)
                    if isinstance(exc, httpx.HTTPError):
                        raise session.transport_error(response.request, exc) from exc
                    raise
        finally:
            response.close()

    def _usage_counter(
        self, target: CatalogModel, body: Mapping[str, Any], messages: Sequence[PromptMessage]
    ) -> UsageFn:
        """Prices the gateway's token counts; estimates offline only the counts it did not send."""
        started = getattr(self, "started_at", None) or time.perf_counter()

        def usage_for(counts: TokenCounts, text: str) -> LLMUsage:
            prompt_tokens, completion_tokens = counts.prompt, counts.completion
            if prompt_tokens is None:
                chat = body.get("messages")
                prompt_tokens = estimate_tokens(
                    target, messages=chat if chat is not None else to_openai_messages(target, messages)
                )
            if completion_tokens is None:
                completion_tokens = estimate_tokens(target, text=text)
            latency = time.perf_counter() - started
            return llm_usage(target, prompt_tokens, completion_tokens, latency, cached_tokens=counts.cached or 0)

        return usage_for

    def get_num_tokens(
        self,
        model: str,
        credentials: dict,
        prompt_messages: list[PromptMessage],
        tools: list[PromptMessageTool] | None = None,
    ) -> int:
        """Counted offline with LiteLLM's bundled tokenizer; no request reaches the gateway."""
        target = resolve_model("llm", model, credentials)
        return estimate_tokens(target, messages=to_openai_messages(target, prompt_messages))

    def validate_credentials(self, model: str, credentials: Mapping[str, Any]) -> None:
        """One real, minimal chat through the same route and auth the model will use, per endpoint and key."""

        def ping() -> object:
            ping = [UserPromptMessage(content="ping")]
            return self._invoke(model, dict(credentials), ping, {"max_tokens": 5}, stream=False)

        check_credentials(self.model_type.value, model, credentials, ping)
