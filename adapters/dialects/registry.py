"""Every wire dialect, found by its file: adapters/dialects/<provider>/<capability>.py.

The layout follows LiteLLM's llms/<provider>/<capability>/transformation.py. Each module in a
provider folder defines one dialect object as `DIALECT`; this module imports them all and keys
them by model type and name (names repeat across types: "openai" is a chat, an embedding, a
transcription and a speech dialect). A route preset in provider_configs/routes.yaml names its
dialect, and the catalog loader accepts exactly the names found here, so adding a wire format is
one new file plus a route preset; it checks too that the dialect serves the route's modes.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from adapters.dialects.kinds import Dialect

_PACKAGE = "adapters.dialects"


@functools.cache
def _dialects() -> Mapping[tuple[str, str], Dialect]:
    found: dict[tuple[str, str], Dialect] = {}
    for folder in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if not folder.ispkg:
            continue  # kinds, registry, answers: shared, not dialects
        package = importlib.import_module(f"{_PACKAGE}.{folder.name}")
        for module_info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{module_info.name}")
            dialect = getattr(module, "DIALECT", None)
            if not isinstance(dialect, Dialect):
                raise TypeError(f"{module.__name__} defines no DIALECT (every module of a provider folder is one)")
            key = (dialect.model_type, dialect.name)
            if key in found:
                raise TypeError(f"{module.__name__}: {dialect.model_type} dialect {dialect.name!r} is defined twice")
            found[key] = dialect
    return MappingProxyType(found)


def dialect_modes(model_type: str) -> Mapping[str, frozenset[str]]:
    """Each dialect name of `model_type`, with the model modes it serves (none for an unknown type)."""
    return MappingProxyType({name: d.modes for (of_type, name), d in _dialects().items() if of_type == model_type})


def dialect[D: Dialect](kind: type[D], name: str) -> D:
    """The `kind` dialect (ChatDialect, EmbeddingDialect, ...) called `name`; a catalog route names a known one."""
    found = _dialects().get((kind.model_type, name))
    if not isinstance(found, kind):
        raise LookupError(f"no {kind.model_type} dialect {name!r} (known: {sorted(dialect_modes(kind.model_type))})")
    return found
