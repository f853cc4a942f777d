"""Documentation generated from the config schema: docs/configuration.md's reference table."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from text2sign.config import Config


def describe_fields(
    model: type[BaseModel] = Config, prefix: str = ""
) -> list[tuple[str, str, str]]:
    """(dotted key, default, description) for every leaf field: the configuration reference."""
    rows = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe_fields(ann, f"{prefix}{name}."))
        else:
            default = field.get_default(call_default_factory=True)
            rows.append((prefix + name, json.dumps(default), field.description or ""))
    return rows


def reference_markdown() -> str:
    """The configuration reference table (a test keeps docs/configuration.md in sync)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, desc in describe_fields():
        lines.append(f"| `{key}` | `{default}` | {desc} |")
    return "\n".join(lines) + "\n"


def update_reference(path: str | Path) -> bool:
    """Rewrite the generated configuration reference in ``path``; True when it changed."""
    path = Path(path)
    text = path.read_text()
    start_tag, end_tag = "<!-- config-reference:start -->\n", "<!-- config-reference:end -->"
    a = text.index(start_tag) + len(start_tag)
    b = text.index(end_tag)
    new = text[:a] + reference_markdown() + text[b:]
    if new != text:
        path.write_text(new)
    return new != text
