"""The provider: checks provider-level credentials with one real call through the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dify_plugin.entities.model import ModelType
from dify_plugin.errors.model import CredentialsValidateFailedError
from dify_plugin.interfaces.model import ModelProvider

from adapters.catalog.loader import default_catalog


class AIGatewayProvider(ModelProvider):
    def validate_provider_credentials(self, credentials: Mapping[str, Any]) -> None:
        """Chats once with `validate_model` (default: the first LLM in the catalog)."""
        model = str(credentials.get("validate_model") or "").strip()
        if not model:
            llms = default_catalog().of_type("llm")
            if not llms:
                raise CredentialsValidateFailedError(
                    "Credential field 'validate_model' is required: the catalog has no LLM."
                )
            model = llms[0].name
        self.get_model_instance(ModelType.LLM).validate_credentials(model, dict(credentials))
