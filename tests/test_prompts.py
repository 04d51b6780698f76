"""Prompt templates: every shipped template parses into clean parts, and BCI's no-behavior twin is BCI's prompt with
the behavior block cut out word for word."""

from __future__ import annotations

from importlib import resources

import pytest

from agentkit.prompts import load_prompt

NAMES = sorted(p.name[:-4] for p in resources.files("agentkit.prompts").iterdir() if p.name.endswith(".txt"))


@pytest.mark.parametrize("name", NAMES)
def test_every_template_parses_into_clean_parts(name: str) -> None:
    template = load_prompt(name)
    for part in (template.system, template.user):
        assert not part.startswith("---") and "\n---\n" not in part, "the separator leaked into a message"
        assert not any(line.startswith("#") for line in part.splitlines())
    assert template.user and "{problem}" in template.user + template.system
    assert template.source, "a template says where it comes from"
    for message in template.render(**{f: "x" for f in template.fields}):
        assert message["content"].strip() == message["content"] and message["content"]


def test_the_bci_twin_is_the_bci_prompt_without_its_behavior_block() -> None:
    bci, twin = load_prompt("bci"), load_prompt("bci_plain")
    assert bci.system == twin.system == ""
    block_start = bci.user.index("A behavior is a note")
    block_end = bci.user.index("Now, solve")
    kept = bci.user[:block_start] + bci.user[block_end:]
    kept = kept.replace(" You can use any of the behaviors above to solve the problem.", "")
    kept = kept.replace("In your reasoning, when you use a behavior explicitly refer to the behaviors when you use them.\n",
                        "")
    assert kept == twin.user  # string for string: nothing else differs
    assert "behavior" not in twin.user and twin.hash != bci.hash != load_prompt("long_cot").hash
