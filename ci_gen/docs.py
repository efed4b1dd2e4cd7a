"""README sections generated from the descriptor: one inputs table per component.

The README holds `<!-- ci-gen:inputs NAME -->` ... `<!-- /ci-gen:inputs -->` blocks;
`ci-gen build` fills them and `ci-gen build --check` fails when they drift.
"""

from __future__ import annotations

import json
import re

from ci_gen import components as desc

_BLOCK = re.compile(r"(<!-- ci-gen:inputs ([a-z-]+) -->\n)(.*?)(<!-- /ci-gen:inputs -->)", re.S)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def inputs_table(component: desc.Component) -> str:
    rows = ["| input | type | default | allowed | description |", "|---|---|---|---|---|"]
    for i in component.inputs:
        default = "*(required)*" if i.required else f"`{json.dumps(i.default)}`"
        if i.options is not None:
            allowed = ", ".join(f"`{o}`" for o in i.options)
        elif i.regex is not None:
            allowed = f"`{i.regex}`"
        else:
            allowed = ""
        rows.append(f"| `{i.name}` | {i.type} | {_cell(default)} | {_cell(allowed)} | {_cell(i.description)} |")
    return "\n".join(rows) + "\n"


def update_readme(text: str) -> str:
    """The README with every inputs block regenerated."""

    def fill(m: re.Match) -> str:
        return m.group(1) + inputs_table(desc.get(m.group(2))) + m.group(4)

    return _BLOCK.sub(fill, text)


def blocks(text: str) -> list[str]:
    return [m.group(2) for m in _BLOCK.finditer(text)]
