"""Jinja2 rendering for task templates (the template language lm-evaluation-harness task YAMLs use).

    render("Question: {{question}} Answer:", {"question": "2+2?"})      # 'Question: 2+2? Answer:'

Used by `augury.evals.prompts` to render each record's doc_to_text / doc_to_target / doc_to_choice.
"""

from __future__ import annotations

import ast
import functools
from typing import Any

import jinja2

_STRICT = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_LAX = jinja2.Environment(undefined=jinja2.DebugUndefined, keep_trailing_newline=True)


@functools.lru_cache(maxsize=4096)
def _compile(template: str, strict: bool) -> jinja2.Template:
    return (_STRICT if strict else _LAX).from_string(template)


def render(template: str, values: dict[str, Any], strict: bool = True) -> str:
    """Render `template` with `values`; strict mode raises on an undefined name."""
    return _compile(template, strict).render(**values)


def render_list(template: str | list[str], values: dict[str, Any]) -> list[str]:
    """A list of choices: each list element rendered, or one template rendering to a Python list literal."""
    if isinstance(template, list):
        return [render(t, values) for t in template]
    text = render(template, values)
    try:
        out = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"template {template!r} rendered {text[:80]!r}, which is not a list") from None
    if not isinstance(out, (list, tuple)):
        raise ValueError(f"template {template!r} rendered a {type(out).__name__}, not a list")
    return [str(v) if not isinstance(v, (int, float)) else v for v in out]
