"""Running a guide as written: its ```sh blocks, in order, in one shell, against a fresh
`make run` server; each step's output held to what the guide says it answers.

A guide writes a step as commands followed by what they answer, in comments:

    curl -si http://127.0.0.1:8000/v1/catalog -H "Authorization: Bearer $KEY"
    # -> 200 {"currency": "usd"}

- `# -> 201`: the HTTP status (the step shows it: `curl -si`, or `-w`);
- `# -> 201 {...}` or `# -> {...}`: and the JSON body holds at least these keys and
  values (lists item by item; a string with `*` is a pattern, such as `"qt_*"`); the JSON
  may run on over following comment lines (`#    ...`);
- `# -> contains: text`: the output holds this text.

Other comments are prose for the reader. A step with no expectation must still succeed
(exit status 0). ```console blocks show commands for other machines and are not run.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from typing import Any

FENCE = re.compile(r"^```(\w*)\s*$")
EXPECT = re.compile(r"^#\s*->\s*(?P<rest>.*)$")
STATUS_LINE = re.compile(r"^HTTP/[\d.]+ (\d{3})", re.MULTILINE)
MARK = "@@guide-step"


@dataclass
class Step:
    line: int  # where it starts in the guide, for messages
    commands: list[str]
    expectations: list[str] = field(default_factory=list)


def steps_of(markdown: str) -> list[Step]:
    """The guide's ```sh blocks, cut into steps: commands (up to a blank line or an
    expectation), then their expectations."""
    steps: list[Step] = []
    in_block = False
    current: Step | None = None
    for number, line in enumerate(markdown.splitlines(), 1):
        fence = FENCE.match(line)
        if fence:
            in_block = not in_block and fence.group(1) == "sh"
            current = None
            continue
        if not in_block:
            continue
        stripped = line.strip()
        expectation = EXPECT.match(stripped)
        if current is not None and expectation:
            current.expectations.append(expectation.group("rest"))
        elif current is not None and current.expectations and stripped.startswith("#"):
            if not _complete(current.expectations[-1]):  # the JSON runs on
                current.expectations[-1] += " " + stripped.lstrip("#").strip()
        elif not stripped:
            current = None
        elif stripped.startswith("#"):
            continue  # prose for the reader
        elif current is None or current.expectations:
            current = Step(number, [line])
            steps.append(current)
        else:
            current.commands.append(line)
    return steps


def _complete(expectation: str) -> bool:
    body = _json_part(expectation)
    if body is None:
        return True
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _json_part(expectation: str) -> str | None:
    rest = re.sub(r"^\d{3}\s*", "", expectation.strip())
    return rest if rest.startswith(("{", "[")) else None


def script(steps: list[Step], port: int) -> str:
    """One bash script running every step, its output framed by markers."""
    lines = ["set -u"]
    for index, step in enumerate(steps):
        body = "\n".join(step.commands).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        lines += [
            f"printf '\\n{MARK} {index}\\n'",
            "{",
            body,
            "} 2>&1",
            f"printf '\\n{MARK}-exit %s\\n' $?",
        ]
    return "\n".join(lines) + "\n"


def outputs(text: str) -> dict[int, tuple[str, int]]:
    """Each step's output and exit status, from the script's framed output."""
    found: dict[int, tuple[str, int]] = {}
    for match in re.finditer(rf"{MARK} (\d+)\n(.*?)\n{MARK}-exit (\d+)", text, flags=re.DOTALL):
        found[int(match.group(1))] = (match.group(2), int(match.group(3)))
    return found


def problems(step: Step, output: str, status: int) -> list[str]:
    """What the step's output contradicts in the guide (empty when it says what it does)."""
    where = f"line {step.line}: {step.commands[0].strip()[:80]}"
    if status != 0:
        return [f"{where}: exited {status}: {output[-600:]}"]
    found = []
    for expectation in step.expectations:
        rest = expectation.strip()
        if rest.startswith("contains:"):
            text = rest.removeprefix("contains:").strip()
            if text not in output:
                found.append(f"{where}: output lacks {text!r}: {output[-400:]}")
            continue
        code = re.match(r"^(\d{3})\b", rest)
        if code:
            shown = STATUS_LINE.findall(output)
            if not shown:
                found.append(f"{where}: shows no HTTP status (use curl -si)")
            elif shown[-1] != code.group(1):
                found.append(f"{where}: answered {shown[-1]}, the guide says {code.group(1)}")
        body = _json_part(rest)
        if body is not None:
            try:
                expected = json.loads(body)
            except ValueError:
                found.append(f"{where}: the guide's expected answer is not JSON: {body}")
                continue
            actual = _last_json(output)
            if actual is None or not matches(expected, actual):
                found.append(f"{where}: answered {output[-500:]!r}, the guide says {body}")
    return found


def _last_json(output: str) -> Any:
    """The JSON body of the output (after any headers)."""
    body = output.split("\r\n\r\n")[-1] if "\r\n\r\n" in output else output
    for start in (body.find("{"), body.find("[")):
        if start >= 0:
            try:
                return json.loads(body[start:].strip())
            except ValueError:
                continue
    return None


def matches(expected: Any, actual: Any) -> bool:
    """`actual` holds `expected`: every key of an object, each item of a list in its
    place, equal values (a string with `*` as a pattern)."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(value, actual[key]) for key, value in expected.items()
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(actual) >= len(expected)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=False))
        )
    if isinstance(expected, str) and "*" in expected and isinstance(actual, str):
        return fnmatch.fnmatchcase(actual, expected)
    return bool(expected == actual)
