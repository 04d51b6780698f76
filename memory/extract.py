"""Reading behaviors out of what a Strategist model really writes.

The paper's extraction prompt asks for a JSON object ``{"behavior_name": "instruction", ...}``. Models wrap
it in code fences, add prose before and after, leave trailing commas, use single quotes, nest it under a
key, return a list of objects, or fall back to ``behavior_x: ...`` lines. ``parse_behaviors`` accepts all of
these and returns an ``Extraction``: the valid behaviors by normalised name, and every entry it dropped with
the reason (also logged). Nothing it returns fails ``Behavior`` validation, so nothing malformed reaches a
store.

Normalisation is deliberately small: names are lowercased, spaces and hyphens become underscores, a
``behaviors_`` prefix (which the paper itself writes once) becomes ``behavior_``. A name without the prefix is
dropped, not guessed at; an instruction shorter than ``min_chars`` (default 12) or longer than the store's
limit is dropped; a repeated name keeps its first instruction.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from agentkit.errors import validation_problems
from agentkit.log import get_logger

from .behavior import MAX_INSTRUCTION_CHARS, Behavior

__all__ = ["ContrastExtraction", "Extraction", "parse_behaviors", "parse_contrast"]

_log = get_logger("agentkit.memory.extract")

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_LINE = re.compile(
    r"""^\s*(?:[-*\u2022]|\d+[.)])?\s*[`"'*]*\s*(behaviou?rs?_[A-Za-z0-9_\- ]*?[A-Za-z0-9])\s*[`"'*]*\s*"""
    r"""(?::|=|\s-\s|\s\u2013\s|\s\u2014\s)\s*(.+?)\s*$""",
    re.M | re.I,
)
_NESTED_KEYS = ("instruction", "description", "behavior", "text", "value")
_SMART = str.maketrans({"\u201c": '"', "\u201d": '"', "\u2018": "'", "\u2019": "'"})


class Extraction(BaseModel):
    """What ``parse_behaviors`` found."""

    model_config = ConfigDict(frozen=True)

    behaviors: dict[str, str]
    """Valid ``behavior_name -> instruction`` pairs, in the order written."""
    dropped: tuple[tuple[str, str], ...] = ()
    """``(entry, reason)`` for every entry that was not kept."""
    source: str = "none"
    """Where the entries came from: ``json``, ``lines``, ``bullets`` (a contrast section written as a plain list)
    or ``none``."""


def _json_spans(text: str) -> Iterator[str]:
    """Balanced ``{...}`` and ``[...]`` spans at the outermost level (string-aware), in order."""
    depth, start, in_str, escape, opener = 0, -1, False, False, ""
    for i, ch in enumerate(text):
        if in_str:
            if escape:
                escape = False
            elif ch == "\\":
                escape = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"' and depth:
            in_str = True
        elif ch in "{[":
            if depth == 0:
                start, opener = i, ch
            depth += 1
        elif ch in "}]" and depth:
            depth -= 1
            if depth == 0 and (opener, ch) in (("{", "}"), ("[", "]")):
                yield text[start:i + 1]


def _loads(span: str) -> Any:
    """JSON, then JSON with trailing commas removed, then a Python literal (single quotes); None if none."""
    span = span.translate(_SMART)
    for candidate in (span, re.sub(r",\s*([}\]])", r"\1", span)):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    try:
        return ast.literal_eval(span)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _entries(data: Any) -> list[tuple[str, Any]]:
    """Name/instruction pairs from a parsed JSON value (a mapping, a wrapper around one, or a list)."""
    if isinstance(data, list):
        out: list[tuple[str, Any]] = []
        for item in data:
            if isinstance(item, Mapping) and "name" in item and any(k in item for k in _NESTED_KEYS):
                value = next(item[k] for k in _NESTED_KEYS if k in item)
                out.append((str(item["name"]), value))
            else:
                out.extend(_entries(item))
        return out
    if not isinstance(data, Mapping):
        return []
    named = [(str(k), v) for k, v in data.items() if _looks_like_name(str(k))]
    if named:
        return [(str(k), v) for k, v in data.items()]
    # a wrapper such as {"behaviors": {...}} or {"behaviors": [...]}
    return [pair for value in data.values() if isinstance(value, (Mapping, list)) for pair in _entries(value)]


def _looks_like_name(key: str) -> bool:
    return key.strip().strip("`*'\"").lower().startswith(("behavior_", "behaviors_", "behaviour_"))


def _normalise_name(raw: str) -> str:
    name = raw.strip().strip("`*'\"[]").strip().lower()
    name = re.sub(r"[\s\-]+", "_", name)
    name = re.sub(r"^behaviou?rs?_", "behavior_", name)
    return re.sub(r"_+", "_", name).strip("_")


def _instruction(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = next((value[k] for k in _NESTED_KEYS if k in value), None)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith('"'):  # a JSON string on a line of broken JSON: read exactly that string
        try:
            decoded, _ = json.JSONDecoder().raw_decode(text)
            if isinstance(decoded, str):
                return decoded.strip()
        except json.JSONDecodeError:
            pass
    text = text.rstrip(",").strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'`":
        text = text[1:-1].strip()
    return text


def parse_behaviors(text: str, *, min_chars: int = 12, max_chars: int = MAX_INSTRUCTION_CHARS,
                    max_behaviors: int | None = None) -> Extraction:
    """Parse a Strategist's extraction output into valid behaviors plus the dropped entries with reasons."""
    raw: list[tuple[str, Any]] = []
    source = "none"
    blocks = [m.group(1) for m in _FENCE.finditer(text)] or [text]
    for block in blocks:
        for span in _json_spans(block):
            raw.extend(_entries(_loads(span)))
    if raw:
        source = "json"
    else:
        raw = [(m.group(1), m.group(2)) for m in _LINE.finditer(text)]
        if raw:
            source = "lines"
    kept: dict[str, str] = {}
    dropped: list[tuple[str, str]] = []
    for raw_name, value in raw:
        name = _normalise_name(raw_name)
        instruction = _instruction(value)
        entry = f"{raw_name}: {value!r}"[:200]
        reason = None
        if not name.startswith("behavior_") or name == "behavior":
            reason = "name does not start with behavior_"
        elif instruction is None:
            reason = f"instruction is not text ({type(value).__name__})"
        elif len(instruction) < min_chars:
            reason = f"instruction shorter than {min_chars} characters"
        elif len(instruction) > max_chars:
            reason = f"instruction longer than {max_chars} characters"
        elif name in kept:
            reason = "repeated name (the first one is kept)"
        elif max_behaviors is not None and len(kept) >= max_behaviors:
            reason = f"more than {max_behaviors} behaviors"
        else:
            try:
                Behavior(name=name, instruction=instruction)
            except ValidationError as exc:
                reason = "; ".join(f"{f}: {r}" for f, r in validation_problems(exc))
        if reason is not None:
            dropped.append((entry, reason))
            _log.info("behavior entry dropped", entry=entry, reason=reason)
            continue
        assert instruction is not None
        kept[name] = instruction
    if not raw:
        dropped.append((text[:200], "no behaviors found (neither a JSON object nor behavior_name: lines)"))
        _log.info("no behaviors found in extraction output", text=text[:200])
    return Extraction(behaviors=kept, dropped=tuple(dropped), source=source)


class ContrastExtraction(BaseModel):
    """What ``parse_contrast`` found: the Strategies section's behaviors and the Pitfalls section's."""

    model_config = ConfigDict(frozen=True)

    strategies: Extraction
    pitfalls: Extraction


_SECTION = re.compile(r"^[ \t#*_>-]*(strategies|pitfalls)\b[ \t*_]*:?[ \t*_]*$", re.I | re.M)


_BULLET = re.compile(r"^ ?(?:[-*\u2022]|\d{1,2}[.)])[ \t]+(.+?)[ \t]*$", re.M)


def _bullets(section: str, none_found: Extraction, *, max_behaviors: int | None) -> Extraction:
    """A section written as a plain list (what small models write under the heading instead of the requested
    ``behavior_name: instruction`` entries): each top-level item (not indented, not a sub-list's heading ending
    in ``:``) becomes a behavior named from its first words, validated as any entry is. Nothing found: the
    original "no behaviors found" extraction."""
    items = [m.group(1).replace("**", "").replace("__", "").strip() for m in _BULLET.finditer(section)]
    items = [item for item in items if item and not item.endswith(":")]
    if not items:
        return none_found
    lines = []
    for item in items:
        words = re.findall(r"[a-z0-9]+", item.lower())[:5]
        lines.append(f"behavior_{'_'.join(words)}: {item}")
    found = parse_behaviors("\n".join(lines), max_behaviors=max_behaviors)
    return found.model_copy(update={"source": "bullets"})


def parse_contrast(text: str, *, max_behaviors: int | None = None) -> ContrastExtraction:
    """Parse a contrastive extraction: a ``Strategies`` section and a ``Pitfalls`` section (each a heading line,
    then entries as ``parse_behaviors`` reads them). Nothing outside the two sections is taken: entries before
    the first heading are dropped, and a section that is missing is empty (its absence is a dropped entry with
    that reason). A section written as a plain bulleted or numbered list is read item by item, each named from its
    first words (``source="bullets"``)."""
    found: dict[str, str] = {}
    marks = list(_SECTION.finditer(text))
    for i, mark in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        found.setdefault(mark.group(1).lower(), text[mark.end():end])
    outside = text[:marks[0].start()] if marks else text
    sections: dict[str, Extraction] = {}
    for name in ("strategies", "pitfalls"):
        if name in found:
            sections[name] = parse_behaviors(found[name], max_behaviors=max_behaviors)
            if sections[name].source == "none":
                sections[name] = _bullets(found[name], sections[name], max_behaviors=max_behaviors)
        else:
            sections[name] = Extraction(behaviors={}, dropped=((name, f"no {name.capitalize()} section"),))
    stray = parse_behaviors(outside)
    if stray.behaviors:
        extra = tuple((f"{n}: {i!r}", "outside the Strategies and Pitfalls sections") for n, i in stray.behaviors.items())
        sections["strategies"] = sections["strategies"].model_copy(
            update={"dropped": sections["strategies"].dropped + extra})
    return ContrastExtraction(strategies=sections["strategies"], pitfalls=sections["pitfalls"])
