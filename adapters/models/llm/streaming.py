"""The one place that decides how an LLM call streams: on the wire to the gateway, and back to Dify.

Dify asks for a stream or for one answer; the catalog says what the upstream can do. Three cases
make the two differ:

- a stream-only model (`stream_only`: DashScope's QwQ and open Qwen3 refuse unstreamed calls) is
  streamed on the wire even for a blocking call, and the chunks are collected into one answer;
- a model that cannot stream tool calls (`streams_tool_calls: false`) is asked for one complete
  answer when tools are given, and a streaming Dify call gets it as a one-chunk stream;
- otherwise the wire does what Dify asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.catalog.model_info import LLMInfo


@dataclass(frozen=True, slots=True)
class Streaming:
    on_wire: bool  # the gateway is asked to stream (SSE)
    to_dify: bool  # Dify gets chunks; else one LLMResult


def plan_streaming(info: LLMInfo, *, dify_stream: bool, with_tools: bool) -> Streaming:
    """How one call streams, for a model with `info`, Dify asking for a stream or not, with tools or not."""
    wanted = dify_stream or info.stream_only
    return Streaming(on_wire=wanted and not (with_tools and not info.streams_tool_calls), to_dify=dify_stream)
