# ruff: noqa: UP031  (the corpus is written with % so that JSON braces stay literal)
"""The Strategist's extraction output, as models really write it: parsed or rejected, never stored broken."""

from __future__ import annotations

import pytest

from agentkit.memory import Behavior
from agentkit.memory.extract import parse_behaviors

AREA = "Use pi*r^2 for the area of a circle of radius r."
EQN = "Translate each sentence of a word problem into an equation first."

# (model output, expected behaviors, expected number of dropped entries)
CORPUS: list[tuple[str, dict[str, str], int]] = [
    # plain JSON
    ('{"behavior_area_of_circle": "%s"}' % AREA, {"behavior_area_of_circle": AREA}, 0),
    # fenced, with prose around it
    ('Here are the behaviors:\n```json\n{\n  "behavior_area_of_circle": "%s",\n  "behavior_verbal_to_equation": '
     '"%s"\n}\n```\nThese will help.' % (AREA, EQN),
     {"behavior_area_of_circle": AREA, "behavior_verbal_to_equation": EQN}, 0),
    # trailing comma
    ('{"behavior_area_of_circle": "%s",}' % AREA, {"behavior_area_of_circle": AREA}, 0),
    # single quotes (a Python dict)
    ("{'behavior_area_of_circle': '%s'}" % AREA, {"behavior_area_of_circle": AREA}, 0),
    # smart quotes
    ("{\u201cbehavior_area_of_circle\u201d: \u201c%s\u201d}" % AREA, {"behavior_area_of_circle": AREA}, 0),
    # behavior_x: lines, bulleted and numbered, bold names
    ("Behaviors:\n- behavior_area_of_circle: %s\n2. **behavior_verbal_to_equation**: %s\n" % (AREA, EQN),
     {"behavior_area_of_circle": AREA, "behavior_verbal_to_equation": EQN}, 0),
    # the JSON is broken beyond repair, but its lines are readable
    ('{\n"behavior_area_of_circle": "%s",\n"behavior_verbal_to_equation": "%s" "oops"\n' % (AREA, EQN),
     {"behavior_area_of_circle": AREA, "behavior_verbal_to_equation": EQN}, 0),
    # nested under a wrapper key, and a list of {"name", "instruction"} objects
    ('{"behaviors": {"behavior_area_of_circle": "%s"}}' % AREA, {"behavior_area_of_circle": AREA}, 0),
    ('[{"name": "behavior_area_of_circle", "instruction": "%s"}]' % AREA, {"behavior_area_of_circle": AREA}, 0),
    # names normalised: case, hyphens, spaces, the paper's own "behaviors_" typo
    ('{"Behavior_Area-Of Circle": "%s", "behaviors_verbal_to_equation": "%s"}' % (AREA, EQN),
     {"behavior_area_of_circle": AREA, "behavior_verbal_to_equation": EQN}, 0),
    # rejected entries: no prefix, too short, not text, repeated name, empty
    ('{"area_of_circle": "%s", "behavior_short": "too short", "behavior_nested": {"a": 1}, '
     '"behavior_empty": "", "behavior_ok": "%s"}' % (AREA, EQN), {"behavior_ok": EQN}, 4),
    ("- behavior_area_of_circle: %s\n- behavior_area_of_circle: %s" % (AREA, EQN),
     {"behavior_area_of_circle": AREA}, 1),
    # an instruction over the store's limit
    ('{"behavior_long": "%s"}' % ("x" * 2500), {}, 1),
    # a name with characters the store refuses after normalisation
    ('{"behavior_caf\u00e9_rule": "%s"}' % EQN, {}, 1),
    # prose only
    ("I think the solution is correct and no behaviors are needed.", {}, 1),
    ("", {}, 1),
]


@pytest.mark.parametrize(("text", "expected", "dropped"), CORPUS)
def test_corpus(text: str, expected: dict[str, str], dropped: int) -> None:
    result = parse_behaviors(text)
    assert result.behaviors == expected
    assert len(result.dropped) == dropped, result.dropped
    for name, instruction in result.behaviors.items():
        Behavior(name=name, instruction=instruction)  # everything kept is storable
    for _entry, reason in result.dropped:
        assert reason


def test_reasons_name_the_problem() -> None:
    result = parse_behaviors('{"area": "%s", "behavior_x": "short"}' % AREA)
    reasons = [reason for _, reason in result.dropped]
    assert reasons == ["name does not start with behavior_", "instruction shorter than 12 characters"]


def test_max_behaviors_keeps_the_first() -> None:
    text = "\n".join(f"behavior_rule_{i}: {EQN}" for i in range(5))
    result = parse_behaviors(text, max_behaviors=2)
    assert list(result.behaviors) == ["behavior_rule_0", "behavior_rule_1"]
    assert len(result.dropped) == 3 and result.source == "lines"
