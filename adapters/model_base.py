"""What every adapter shares: schemas from the catalog, and errors already in Dify's classes.

Each adapter class lists this mixin first, so its methods take precedence over the SDK's defaults.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from dify_plugin.entities.model import AIModelEntity
from dify_plugin.errors.model import InvokeError
from dify_plugin.interfaces.model.ai_model import AIModel

from adapters.catalog import default_catalog
from adapters.dify_schema import model_entity
from adapters.errors import INVOKE_ERROR_MAPPING, to_invoke_error
from adapters.model_resolver import customizable_model


@functools.cache
def _catalog_entities(model_type: str) -> tuple[AIModelEntity, ...]:
    catalog = default_catalog()
    return tuple(model_entity(m, catalog) for m in catalog.of_type(model_type))


class GatewayModel(AIModel):
    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return dict(INVOKE_ERROR_MAPPING)

    def _transform_invoke_error(self, error: Exception) -> InvokeError:
        # The SDK's version rewrites auth errors to a fixed text and needs a 3-level module path;
        # ours keeps the gateway's own message.
        return to_invoke_error(error)

    def predefined_models(self) -> list[AIModelEntity]:
        """The catalog's models of this type, built from provider_configs/ (not the generated YAML)."""
        return list(_catalog_entities(self.model_type.value))

    def get_customizable_model_schema(self, model: str, credentials: Mapping[str, Any]) -> AIModelEntity | None:
        catalog = default_catalog()
        entry = customizable_model(model, self.model_type.value, credentials, catalog)
        return model_entity(entry, catalog, customizable=True)
