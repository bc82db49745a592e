"""docs/operations.md matches template.yaml: it names every resource, parameter, alarm, log group and
output of the template, and every count it states ("15 alarms", "12 log groups", ...) is the
template's. A resource added to the template without a line in the operations page fails here."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "operations.md"

NUMBER_WORDS = {
    word: n
    for n, word in enumerate(
        (
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        )
    )
}
# what the page counts, as it says it, and which part of the template holds them
COUNTED = {
    "alarms": ("Resources", "AWS::CloudWatch::Alarm"),
    "log groups": ("Resources", "AWS::Logs::LogGroup"),
    "functions": ("Resources", "AWS::Serverless::Function"),
    "state machines": ("Resources", "AWS::Serverless::StateMachine"),
    "resources": ("Resources", None),
    "parameters": ("Parameters", None),
    "outputs": ("Outputs", None),
}


def stated_counts(text: str, noun: str) -> list[int]:
    """Every count the text states for `noun`: "15 alarms", "**12 log groups**", "three log groups"."""
    words = "|".join(NUMBER_WORDS)
    pattern = re.compile(rf"\b(\d[\d,]*|{words})\*{{0,2}}\s+{noun}\b", re.IGNORECASE)
    found = []
    for match in pattern.finditer(text.replace("**", "")):
        number = match.group(1).lower().replace(",", "")
        found.append(NUMBER_WORDS[number] if number in NUMBER_WORDS else int(number))
    return found


def named(text: str, name: str) -> bool:
    return f"`{name}`" in text


def template_names(template: dict[str, Any], section: str, type_: str | None) -> list[str]:
    items: dict[str, Any] = template.get(section, {})
    return [name for name, item in items.items() if type_ is None or item.get("Type") == type_]


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize("noun", COUNTED)
def test_every_count_the_page_states_is_the_templates(doc: str, template: dict[str, Any], noun: str) -> None:
    section, type_ = COUNTED[noun]
    want = len(template_names(template, section, type_))
    stated = stated_counts(doc, noun)
    assert stated, f"docs/operations.md never says how many {noun} the stack has ({want})"
    assert set(stated) == {want}, f"docs/operations.md says {stated} {noun}; template.yaml has {want}"


@pytest.mark.parametrize(
    ("section", "type_"),
    [
        ("Resources", "AWS::CloudWatch::Alarm"),
        ("Resources", "AWS::Logs::LogGroup"),
        ("Outputs", None),
        ("Parameters", None),
        ("Resources", None),
    ],
    ids=["alarms", "log groups", "outputs", "parameters", "every resource"],
)
def test_the_page_names_everything_the_template_declares(
    doc: str, template: dict[str, Any], section: str, type_: str | None
) -> None:
    missing = [name for name in template_names(template, section, type_) if not named(doc, name)]
    assert missing == [], f"docs/operations.md does not name {missing}"


def test_every_log_group_is_named_by_its_cloudwatch_name(doc: str, template: dict[str, Any]) -> None:
    # `/aws/lambda/${AWS::StackName}-api` in the template is `/aws/lambda/<stack>-api` on the page
    names = [
        template["Resources"][group]["Properties"]["LogGroupName"]["Fn::Sub"].replace(
            "${AWS::StackName}", "<stack>"
        )
        for group in template_names(template, "Resources", "AWS::Logs::LogGroup")
    ]
    assert [name for name in names if not named(doc, name)] == []


def test_every_parameter_default_on_the_page_is_the_templates(doc: str, template: dict[str, Any]) -> None:
    # a Parameters table row: | `Name` | `default` or empty | meaning |
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*) \|", doc, flags=re.MULTILINE))
    wrong = {}
    for name, parameter in template["Parameters"].items():
        default = str(parameter.get("Default", ""))
        if isinstance(parameter.get("Default"), float):
            default = f"{parameter['Default']:.10f}".rstrip("0")
        shown = rows.get(name, "").strip()
        if shown != (f"`{default}`" if default else "empty"):
            wrong[name] = (shown, default)
    assert wrong == {}


def test_the_checks_catch_a_stale_page(template: dict[str, Any]) -> None:
    # the page as it was before issue 17: four alarms, three log groups, no GenerationsApiUrl
    stale = (
        "| `ExecutionsFailedAlarm`, `ExecutionsTimedOutAlarm`, `GenerateChunkErrorsAlarm`, "
        "`FinalizeErrorsAlarm` | See Alarms. |\n"
        "- All three log groups are encrypted with `MonitoringKey`.\n"
        "- **Fixed monthly costs**: `MonitoringKey` $1, 4 alarms x $0.10.\n"
        "Outputs: `JobsBucketName`, `GenerationStateMachineArn`.\n"
    )
    assert stated_counts(stale, "alarms") == [4]
    assert stated_counts(stale, "log groups") == [3]
    assert not named(stale, "GenerationsApiUrl")
    alarms = template_names(template, "Resources", "AWS::CloudWatch::Alarm")
    assert len(alarms) != 4
    assert [a for a in alarms if not named(stale, a)] != []
