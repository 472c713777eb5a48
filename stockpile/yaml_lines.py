"""Where each value of a YAML document sits, so that errors can name the line (scenario files, chip files)."""
from __future__ import annotations

from typing import Any

import yaml


def line_map(text: str) -> dict[tuple[Any, ...], int]:
    """YAML path (mapping keys and list indices) -> 1-based line of the key (or of the value for list items);
    empty when the text does not parse."""
    lines: dict[tuple[Any, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                lines[path + (k.value,)] = k.start_mark.line + 1
                walk(v, path + (k.value,))
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                walk(v, path + (i,))
    if root is not None:
        walk(root, ())
    return lines
