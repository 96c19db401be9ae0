"""Reads provider_configs/ YAML with libyaml, refusing the duplicate keys PyYAML would silently accept.

PyYAML keeps the last of two equal keys in a mapping, so a catalog entry with `context_size` written
twice loads with whichever came second. Here the document is composed into nodes first (libyaml's C
parser, the slow part), checked for duplicate keys, and only then constructed. Merge keys (`<<:`)
still override what they merge in: that is how the catalog's shared defaults are meant to work.
"""

from __future__ import annotations

from typing import IO, Any

import yaml

# libyaml's parser and emitter are ~10x faster than PyYAML's pure-Python ones.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(ValueError):
    """A mapping holds one key twice; `model` is the enclosing catalog entry's `model_name`, if any."""

    def __init__(self, field: str, model: str | None, line: int, first_line: int):
        self.field, self.model, self.line, self.first_line = field, model, line, first_line
        super().__init__(f"duplicate key {field!r} (lines {first_line} and {line})")


def _field(path: list[str | int]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else part
    return text


def _model_name(node: yaml.MappingNode) -> str | None:
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "model_name" and isinstance(value, yaml.ScalarNode):
            return value.value
    return None


def _refuse_duplicates(root: yaml.Node) -> None:
    """Raise DuplicateKeyError for the first mapping that repeats a key (paths relative to a model entry)."""
    # (node, path below the current model entry, that model's name); iterative, visiting shared
    # (anchored) nodes once.
    pending: list[tuple[yaml.Node, list[str | int], str | None]] = [(root, [], None)]
    visited: set[int] = set()
    while pending:
        node, path, model = pending.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            pending.extend((item, [*path, i], model) for i, item in enumerate(node.value))
        elif isinstance(node, yaml.MappingNode):
            if (name := _model_name(node)) is not None:
                path, model = [], name
            seen: dict[str, int] = {}
            for key, value in node.value:
                if key.tag == _MERGE_TAG or not isinstance(key, yaml.ScalarNode):
                    pending.append((value, path, model))
                    continue
                line = key.start_mark.line + 1
                if key.value in seen:
                    raise DuplicateKeyError(_field([*path, key.value]), model, line, seen[key.value])
                seen[key.value] = line
                pending.append((value, [*path, key.value], model))


def load_yaml(stream: str | IO[str]) -> Any:
    """The one YAML document in `stream`; raises yaml.YAMLError or DuplicateKeyError."""
    loader = YAML_LOADER(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicates(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()
