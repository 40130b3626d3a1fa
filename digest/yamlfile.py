"""YAML as kulturdigest reads it (schedule.yaml, front matter): safe, a key written twice is an error,
and an impossible timestamp is text for the key's own check to refuse.

PyYAML keeps the last of two equal keys without a word, so a second `editors:` further down a digest would silently
replace the first. Here it is refused with the line of the second one, like any other YAML error.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError


class UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys in a mapping (merge keys `<<:` may still override, as YAML says)."""

    line_offset = 0  # lines of the file before the YAML text (front matter starts below its '---')

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first_lines: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first_lines.get(key)
                except TypeError:  # an unhashable key: the base class says so with its own message
                    continue
                if earlier is not None:
                    raise ConstructorError(None, None, f"duplicate key {key!r} (first written on line {earlier})",
                                           key_node.start_mark)
                first_lines[key] = key_node.start_mark.line + 1 + self.line_offset
        return super().construct_mapping(node, deep=deep)


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    # A timestamp YAML cannot build (month 13, hour 99) stays text, so the key's own check names key and line;
    # PyYAML would raise a bare ValueError from deep inside.
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


UniqueKeyLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def load(text: str, *, line_offset: int = 0) -> Any:
    """The document in `text`; raises yaml.YAMLError (with a mark for the line) for bad YAML or a repeated key.

    `line_offset`: lines of the file above `text`, so that messages give lines of the file.
    """
    loader = UniqueKeyLoader(text)
    loader.line_offset = line_offset
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def compose(text: str) -> yaml.Node | None:
    """The node tree of `text` (for the line numbers of keys)."""
    return yaml.compose(text, Loader=yaml.SafeLoader)
