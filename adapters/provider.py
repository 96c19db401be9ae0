"""The provider: checks provider-level credentials with one real call through the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dify_plugin.entities.model import ModelType
from dify_plugin.interfaces.model import ModelProvider

from adapters.catalog.loader import default_catalog
from adapters.credentials import credential_error, text


class AIGatewayProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: Mapping[str, Any]) -> None:
        """Chats once with `validate_model` (default: the first LLM in the catalog)."""
        model = text(credentials, "validate_model")
        if not model:
            llms = default_catalog().of_type("llm")
            if not llms:
                raise credential_error("validate_model", "is required: the catalog has no LLM to check with.")
            model = llms[0].name
        self.get_model_instance(ModelType.LLM).validate_credentials(model, dict(credentials))
