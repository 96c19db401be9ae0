"""What every adapter shares: schemas from the catalog, and errors already in Dify's classes, naming the model.

Each adapter class lists this mixin first, so its methods take precedence over the SDK's defaults.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from dify_plugin.entities.model import AIModelEntity
from dify_plugin.errors.model import InvokeBadRequestError, InvokeError
from dify_plugin.interfaces.model.ai_model import AIModel

from adapters.catalog.dify_schema import model_entity
from adapters.catalog.loader import CatalogModel, default_catalog
from adapters.catalog.resolver import MODEL_FORM_FIELDS, customizable_model, is_model_form
from adapters.engine.litellm_facade import NoTranslationError
from adapters.gateway.errors import INVOKE_ERROR_MAPPING, as_reported


def bad_request(model: CatalogModel, problem: str) -> InvokeBadRequestError:
    """Bad invocation input, raised before any request is sent."""
    return InvokeBadRequestError(f"Model {model.name!r}: {problem}")


@contextmanager
def translated_by_litellm(model: CatalogModel) -> Iterator[None]:
    """Around building a request: a route whose LiteLLM provider lacks the translation is a bad request."""
    try:
        yield
    except NoTranslationError as exc:
        raise bad_request(model, f"route {model.route.name!r}: {exc}.") from exc


@functools.cache
def _catalog_entities(model_type: str) -> tuple[AIModelEntity, ...]:
    catalog = default_catalog()
    return tuple(model_entity(m, catalog) for m in catalog.of_type(model_type))


@functools.cache
def _catalog_names(model_type: str) -> frozenset[str]:
    return frozenset(m.name for m in default_catalog().of_type(model_type))


_SCHEMA_CACHE_SIZE = 256
_customizable_schemas: OrderedDict[tuple[str, str, tuple[str, ...]], AIModelEntity] = OrderedDict()


class GatewayModel(AIModel):
    @property
    def _invoke_error_mapping(self) -> dict[type[InvokeError], list[type[Exception]]]:
        return dict(INVOKE_ERROR_MAPPING)

    def _transform_invoke_error(self, error: Exception) -> InvokeError:
        # The SDK's version rewrites auth errors to a fixed text and needs a 3-level module path;
        # ours keeps the gateway's own message, and cuts the chain of causes the SDK would send on.
        return as_reported(error)

    def get_model_schema(self, model: str, credentials: Mapping | None = None) -> AIModelEntity | None:
        """The catalog's schema for a catalog model; a customizable model's built from its own form, and kept.

        Which one `model` is follows the credentials, not the name (resolver.is_model_form): a model
        the user added by name is described by its own form even when the catalog has that name.

        Performance: the SDK looks the schema up on every invoke (to filter the parameters), and for
        a customizable model that means building it from the credentials and filling in the
        parameter templates again, ~0.07 ms per call. The schema is built from the model-form fields
        alone (the resolver is handed only MODEL_FORM_FIELDS; the catalog is fixed for the process),
        so the model type, the name and those values are the cache key: models that differ only in
        gateway credentials share an entry, and no gateway field, so no secret, is ever read or kept
        here. At most _SCHEMA_CACHE_SIZE are kept, least recently used out first. A kept schema is
        shared between calls as the catalog models' schemas already are; the SDK's template filling
        only sets what is unset, so running it again on a kept schema changes nothing. A form that
        fails is not kept.
        """
        listed = model in _catalog_names(self.model_type.value)
        if not credentials or (listed and not is_model_form(credentials)):
            return super().get_model_schema(model, credentials)
        form = {name: credentials.get(name) for name in MODEL_FORM_FIELDS}
        key = (self.model_type.value, model, tuple(repr(value) for value in form.values()))
        schema = _customizable_schemas.get(key)
        if schema is not None:
            _customizable_schemas.move_to_end(key)
            return schema
        schema = self.get_customizable_model_schema_from_credentials(model, form)
        if schema is not None:
            _customizable_schemas[key] = schema
            while len(_customizable_schemas) > _SCHEMA_CACHE_SIZE:
                _customizable_schemas.popitem(last=False)
        return schema

    def predefined_models(self) -> list[AIModelEntity]:
        """The catalog's models of this type, built from provider_configs/ (not the generated YAML)."""
        return list(_catalog_entities(self.model_type.value))

    def get_customizable_model_schema(self, model: str, credentials: Mapping[str, Any]) -> AIModelEntity | None:
        catalog = default_catalog()
        entry = customizable_model(model, self.model_type.value, credentials, catalog)
        return model_entity(entry, catalog, customizable=True)
