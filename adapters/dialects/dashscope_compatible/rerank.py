"""DashScope's compatible rerank (`/compatible-api/v1/reranks`, qwen3-rerank): Cohere's body and results.

The wire is Cohere's (`{"model","query","documents","top_n"}` → top-level `results`); the preset
reads it with LiteLLM's `dashscope` rerank config, which also knows DashScope's error envelope.
"""

from __future__ import annotations

from adapters.dialects.cohere.rerank import CohereRerank


class DashScopeCompatibleRerank(CohereRerank):
    name = "dashscope-compatible"


DIALECT = DashScopeCompatibleRerank()
