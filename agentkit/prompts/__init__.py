"""Prompt templates: text files in ``agentkit/prompts/`` that say where they come from.

A template file has comment lines (``#``) first, then a system part, a line ``---``, and a user part.
Fields are written ``{name}`` (a Python identifier); every other brace is literal text, so LaTeX such as
``\\boxed{}`` needs no escaping, and text filled into a field is never scanned again. ``template_hash`` is stored with results so
a changed prompt is never mistaken for the same experiment.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib import resources

from agentkit.errors import ConfigError

__all__ = ["PromptTemplate", "load_prompt"]

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PromptTemplate:
    """A system + user prompt pair with ``{field}`` slots."""

    def __init__(self, name: str, system: str, user: str, source: str) -> None:
        self.name, self.system, self.user, self.source = name, system, user, source
        self.hash = hashlib.sha256(f"{system}\n---\n{user}".encode()).hexdigest()[:16]

    @property
    def fields(self) -> set[str]:
        """The field names the template uses."""
        return set(_FIELD.findall(self.system)) | set(_FIELD.findall(self.user))

    def fill(self, text: str, fields: dict[str, str]) -> str:
        missing = self.fields - fields.keys()
        if missing:
            raise ConfigError(f"prompt {self.name!r} needs field(s) {', '.join(sorted(missing))}")
        return _FIELD.sub(lambda m: str(fields[m.group(1)]), text)

    def render(self, **fields: str) -> list[dict[str, str]]:
        """The chat messages, with the fields filled in."""
        messages = [{"role": "user", "content": self.fill(self.user, fields)}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.fill(self.system, fields)})
        return messages


@cache
def load_prompt(name: str) -> PromptTemplate:
    """Load ``agentkit/prompts/<name>.txt``."""
    try:
        text = resources.files(__name__).joinpath(f"{name}.txt").read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"no prompt template named {name!r} in agentkit/prompts/") from None
    lines = text.splitlines()
    comments = [line[1:].strip() for line in lines if line.startswith("#")]
    body = [line for line in lines if not line.startswith("#")]
    # The first line that is exactly `---` separates the parts; it may be the first line of the body (a template
    # with no system part), which a search for "\n---\n" would miss and send as the user message's first line.
    cut = next((i for i, line in enumerate(body) if line.strip() == "---"), None)
    system, user = ("", body) if cut is None else (body[:cut], body[cut + 1:])
    return PromptTemplate(name, "\n".join(system).strip(), "\n".join(user).strip(), " ".join(comments))
