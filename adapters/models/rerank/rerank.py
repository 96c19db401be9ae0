"""Translates Dify rerank calls into the route's rerank dialect and the scores back into Dify documents.

Scores reach Dify exactly as the gateway sent them: no min-max rescaling, so a single document
keeps its real score instead of becoming 0. Each result is mapped back to Dify's own document by
its index. `top_n` None or <= 0 means every document, and so does a `score_threshold` of None or 0:
the plugin daemon turns Dify's null into 0 / 0.0 (its request struct in langgenius/dify-plugin-daemon
`pkg/entities/requests/model.go` holds `TopN int` and `ScoreThreshold float64`), and a zero
threshold must not drop the documents of a model that scores with raw, possibly negative logits.
More documents than the model's `max_documents` go out in several requests, several at a time
(adapters/models/batches.py), and are ranked together;
no documents at all is an empty result, without a request.
The route's dialect (adapters/dialects/) writes the body and reads the answer.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from dify_plugin.entities.model.rerank import RerankDocument, RerankResult
from dify_plugin.interfaces.model.rerank_model import RerankModel

from adapters.catalog.resolver import resolve_model
from adapters.dialects.kinds import RerankDialect
from adapters.dialects.registry import dialect
from adapters.gateway.transport import session_for
from adapters.message_size import oversize, text_worst_case, too_large
from adapters.models.base import GatewayModel, bad_request
from adapters.models.batches import in_parallel
from adapters.models.invocation_headers import own_headers
from adapters.models.validation import check_credentials


class AIGatewayRerankModel(GatewayModel, RerankModel):
    def _invoke(
        self,
        model: str,
        credentials: dict,
        query: str,
        docs: list[str],
        score_threshold: float | None = None,
        top_n: int | None = None,
        user: str | None = None,
    ) -> RerankResult:
        target = resolve_model("rerank", model, credentials)
        if not docs:
            # As the SDK's reference rerank model answers: nothing to rank is an empty ranking.
            return RerankResult(model=target.name, docs=[])
        if not query or not query.strip():
            raise bad_request(target, "the query is empty.")
        limit = top_n if top_n and top_n > 0 else None
        session = session_for(credentials)
        budget = session.budget("rerank")
        headers = own_headers(session, user)
        wire = dialect(RerankDialect, target.route.dialect)
        provider, name = target.route.litellm, target.gateway_model
        size = target.info.max_documents or len(docs)

        def rank(batch: list[str]) -> dict[int, float]:
            top = min(limit, len(batch)) if limit else None
            body = wire.request_body(provider=provider, model=name, query=query, documents=batch, top_n=top)
            response = session.send(target.route.path, json=body, budget=budget, own_headers=headers)
            with session.reading(response):
                return wire.parse_answer(provider=provider, model=name, response=response, count=len(batch))

        starts = range(0, len(docs), size)
        answers = in_parallel([functools.partial(rank, docs[start : start + size]) for start in starts])
        scores = {
            start + index: score
            for start, answer in zip(starts, answers, strict=True)
            for index, score in answer.items()
        }
        ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
        if score_threshold:
            ranked = [(index, score) for index, score in ranked if score >= score_threshold]
        documents = [RerankDocument(index=index, text=docs[index], score=score) for index, score in ranked[:limit]]
        result = RerankResult(model=target.name, docs=documents)
        worst = sum(text_worst_case(document.text) + 64 for document in documents)
        if (size := oversize(result, worst)) is not None:
            what = f"the {len(documents):,} ranked documents with their texts"
            raise bad_request(target, too_large(what, size) + "; ask for fewer of them (top_n).")
        return result

    def validate_credentials(self, model: str, credentials: Mapping[str, Any]) -> None:
        """Reranks one document through the same route and auth the model will use, per endpoint and key."""

        def ping() -> object:
            return self._invoke(model, dict(credentials), "ping", ["ping"])

        check_credentials(self.model_type.value, model, credentials, ping)
