"""Translates Dify text-embedding calls into batched embedding requests on the gateway's routes.

Texts go out in batches of the model's `max_chunks` (catalog, or the customizable model's
credential), one request per batch through the consumer's session, several batches at a time
(adapters/models/batches.py); the vectors come back in input order (a missing or repeated index is
an error, never a silently shorter list) and the gateway's token counts are priced from the catalog.
The route's dialect (adapters/dialects/) writes the body and reads the answer.

Options come from the catalog: query/document is sent only for models with `supports_input_type`,
a vector size only for models that list `dimensions` (the model's `output_vector_size`), so every
vector of an index keeps one size even if the backend's default changes.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from typing import Any

from dify_plugin.entities.model import EmbeddingInputType
from dify_plugin.entities.model.text_embedding import EmbeddingUsage, TextEmbeddingResult
from dify_plugin.interfaces.model.text_embedding_model import TextEmbeddingModel

from adapters.catalog.dify_schema import max_chunks
from adapters.catalog.loader import CatalogModel
from adapters.catalog.resolver import resolve_model
from adapters.dialects.kinds import EmbeddingBatch, EmbeddingDialect
from adapters.dialects.registry import dialect
from adapters.gateway.transport import session_for
from adapters.message_size import embedding_worst_case, oversize, too_large
from adapters.models.base import GatewayModel, bad_request, translated_by_litellm
from adapters.models.batches import in_parallel
from adapters.models.invocation_headers import own_headers
from adapters.models.usage import embedding_usage, estimate_tokens
from adapters.models.validation import check_credentials


class AIGatewayTextEmbeddingModel(GatewayModel, TextEmbeddingModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        texts: list[str],
        user: str | None = None,
        input_type: EmbeddingInputType = EmbeddingInputType.DOCUMENT,
    ) -> TextEmbeddingResult:
        target = resolve_model("text-embedding", model, credentials)
        if not texts:
            raise bad_request(target, "there are no texts to embed.")
        empty = [i for i, text in enumerate(texts) if not text]
        if empty:
            raise bad_request(target, f"text(s) at position {empty[:10]} are empty; the gateway rejects empty input.")
        session = session_for(credentials)
        budget = session.budget("text-embedding")
        headers = own_headers(session, user)
        wire = dialect(EmbeddingDialect, target.route.dialect)
        info, provider, name = target.info, target.route.litellm, target.gateway_model
        kind = EmbeddingInputType(input_type).value if info.supports_input_type else None
        dimensions = info.output_vector_size if info.dimensions else None
        size = info.max_chunks

        def embed(batch: list[str]) -> EmbeddingBatch:
            with translated_by_litellm(target):
                body = wire.request_body(
                    provider=provider, model=name, texts=batch, input_type=kind, dimensions=dimensions
                )
            response = session.send(target.route.path, json=body, budget=budget, own_headers=headers)
            with session.reading(response):
                return wire.parse_answer(
                    provider=provider, model=name, response=response, count=len(batch), dimensions=dimensions
                )

        batches = [texts[start : start + size] for start in range(0, len(texts), size)]
        answers = in_parallel([functools.partial(embed, batch) for batch in batches])
        vectors = [vector for answer in answers for vector in answer.vectors]
        # The gateway's count is preferred; a batch it did not count is counted offline.
        tokens = sum(
            answer.tokens if answer.tokens is not None else sum(self._count(target, batch))
            for answer, batch in zip(answers, batches, strict=True)
        )
        return _deliverable(
            target, TextEmbeddingResult(model=target.name, embeddings=vectors, usage=self._usage(target, tokens))
        )

    def _usage(self, target: CatalogModel, tokens: int) -> EmbeddingUsage:
        started = getattr(self, "started_at", None) or time.perf_counter()
        return embedding_usage(target, tokens, time.perf_counter() - started)

    @staticmethod
    def _count(target: CatalogModel, texts: list[str]) -> list[int]:
        return [estimate_tokens(target, text=text) for text in texts]

    def get_num_tokens(self, model: str, credentials: dict, texts: list[str]) -> list[int]:
        """Counted offline with LiteLLM's bundled tokenizer; no request reaches the gateway."""
        return self._count(resolve_model("text-embedding", model, credentials), texts)

    def validate_credentials(self, model: str, credentials: Mapping[str, Any]) -> None:
        """Embeds one short text through the same route and auth the model will use, per endpoint and key."""

        def ping() -> object:
            return self._invoke(model, dict(credentials), ["ping"])

        check_credentials(self.model_type.value, model, credentials, ping)


def _deliverable(target: CatalogModel, result: TextEmbeddingResult) -> TextEmbeddingResult:
    """The result, if it fits in one message to the plugin daemon; a bad request naming its size if not.

    It does not fit when a call brings more texts than the model's max_chunks told Dify, or the
    gateway answers with longer vectors than the model declares.
    """
    vectors = result.embeddings
    size = oversize(result, embedding_worst_case(vectors))
    if size is None:
        return result
    dimensions = max(len(vector) for vector in vectors)
    raise bad_request(
        target,
        too_large(f"{len(vectors)} vectors of {dimensions:,} dimensions", size)
        + f"; send at most {max_chunks(target.info)} texts per call (the max_chunks Dify is told).",
    )
