"""What changed between two versions of a task, field by field, as lines a page can show."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass

from core.models import TaskVersion

#: Unchanged lines shown around each change.
CONTEXT_LINES = 3


@dataclass(frozen=True)
class FieldDiff:
    """One changed field: `lines` are (kind, text), kind one of "add", "del", "same", "gap"
    (a run of unchanged lines left out)."""

    field: str
    lines: list[tuple[str, str]]


def _text_fields(version: TaskVersion) -> dict[str, str]:
    return {
        "Instruction": version.instruction,
        "Scene setup": version.scene_setup,
        "Time limit (s)": f"{version.time_limit_s:g}",
        "Allowed embodiments": "\n".join(sorted(e.name for e in version.allowed_embodiments.all())),
        # The spec's own order (stages are ordered), two-space indents: one value a line.
        "Success criteria": json.dumps(version.criteria, indent=2, ensure_ascii=False),
    }


def version_diff(older: TaskVersion, newer: TaskVersion) -> list[FieldDiff]:
    """The fields that differ from `older` to `newer`, each as a unified diff without its
    headers; empty when the two hold the same content."""
    before, after = _text_fields(older), _text_fields(newer)
    diffs = []
    for field, old_text in before.items():
        new_text = after[field]
        if old_text == new_text:
            continue
        lines: list[tuple[str, str]] = []
        diff = difflib.unified_diff(
            old_text.splitlines(), new_text.splitlines(), n=CONTEXT_LINES, lineterm=""
        )
        for line in list(diff)[2:]:  # the "---" and "+++" headers
            if line.startswith("@@"):
                lines.append(("gap", line))
            elif line.startswith("+"):
                lines.append(("add", line[1:]))
            elif line.startswith("-"):
                lines.append(("del", line[1:]))
            else:
                lines.append(("same", line[1:]))
        diffs.append(FieldDiff(field=field, lines=lines))
    return diffs
