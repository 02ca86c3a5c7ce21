"""Does a Jinja2 template (a GGUF or tokenizer chat template) try to escape into Python?

Benign chat templates use messages, loops, ``namespace``, ``raise_exception``, filters such as ``trim``
and ``tojson``. Server-side template injection needs attribute or item access to underscore names
(``__class__``, ``__globals__``, ``__builtins__``, ``__subclasses__``, ``_TemplateReference__context``),
usually spelled so a naive filter misses it: ``|attr('__cl'+'ass__')``, ``'\\x5f'`` escapes, string
concatenation. Those are malicious; the indirect tools (``|attr``, escapes in strings, ``lipsum``,
``cycler``, ``joiner``, ``self``, ``config``, ``request``) are unsafe.
"""

from __future__ import annotations

import re

from mlwarden.scan.model import Severity

_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_DUNDER = re.compile(r"\.\s*_\w*|\[\s*['\"]_\w*|__\w+__")
_CODE_WORDS = re.compile(r"\b(?:__import__|popen|subprocess|os\.system|eval|exec|globals|builtins|mro|subclasses)\b")
_INDIRECT = re.compile(r"\|\s*attr\b|\\x[0-9a-fA-F]{2}|\\u00[0-9a-fA-F]{2}|\\[0-7]{3}")
_GADGETS = re.compile(r"\b(?:lipsum|cycler|joiner|self|config|request|url_for|get_flashed_messages)\b")


def template_findings(template: str) -> list[tuple[Severity, str]]:
    """(severity, message) for each way the template reaches beyond data."""
    found: list[tuple[Severity, str]] = []
    for block in _BLOCK.findall(template):
        if _DUNDER.search(block) or _CODE_WORDS.search(block):
            found.append((Severity.MALICIOUS, f"reaches Python internals: {block[:120]!r}"))
        elif _INDIRECT.search(block):
            found.append((Severity.UNSAFE, f"builds attribute names indirectly: {block[:120]!r}"))
        elif _GADGETS.search(block):
            found.append((Severity.UNSAFE, f"uses a Jinja2 object that leads to Python: {block[:120]!r}"))
    return found[:20]
