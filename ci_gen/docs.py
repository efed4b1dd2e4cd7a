"""README sections generated from what they describe: one inputs table per component (from the
descriptor) and the CLI table (from the argparse parser of `ci-gen`).

The README holds `<!-- ci-gen:inputs NAME -->` ... `<!-- /ci-gen:inputs -->` blocks and one
`<!-- ci-gen:cli -->` ... `<!-- /ci-gen:cli -->` block; `ci-gen build` fills them and
`ci-gen build --check` fails when they drift.
"""

from __future__ import annotations

import argparse
import json
import re

from ci_gen import components as desc

_BLOCK = re.compile(r"(<!-- ci-gen:inputs ([a-z-]+) -->\n)(.*?)(<!-- /ci-gen:inputs -->)", re.S)
_CLI_BLOCK = re.compile(r"(<!-- ci-gen:cli -->\n)(.*?)(<!-- /ci-gen:cli -->)", re.S)


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


def update_readme(text: str, parser: argparse.ArgumentParser | None = None) -> str:
    """The README with every inputs block regenerated, and the CLI block from `parser`."""

    def fill(m: re.Match) -> str:
        return m.group(1) + inputs_table(desc.get(m.group(2))) + m.group(4)

    text = _BLOCK.sub(fill, text)
    if parser is not None:
        text = _CLI_BLOCK.sub(lambda m: m.group(1) + cli_table(parser) + m.group(3), text)
    return text


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, help) of each subcommand, in the order `--help` lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, sub, helps.get(name, "")) for name, sub in action.choices.items()]
    return []


def _option(action: argparse.Action) -> str:
    flag = max(action.option_strings, key=len)  # the long form
    if action.nargs == 0:
        return flag
    metavar = action.metavar or (" | ".join(action.choices) if action.choices else action.dest.upper())
    return f"{flag} {metavar}" + (" ..." if isinstance(action, argparse._AppendAction) else "")


def synopsis(parser: argparse.ArgumentParser) -> str:
    """The arguments of one command as a line: positionals, then options (one choice of a
    mutually exclusive group as `A | B`); optional ones in brackets."""
    grouped = {id(a): g for g in parser._mutually_exclusive_groups for a in g._group_actions}
    words, done = [], set()
    shown = [a for a in parser._actions if not isinstance(
        a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]
    for action in sorted(shown, key=lambda a: bool(a.option_strings)):  # positionals first
        if not action.option_strings:
            word = action.metavar or action.dest
            words.append({"?": f"[{word}]", "*": f"[{word} ...]", "+": f"{word} [{word} ...]"}.get(
                action.nargs, word))
            continue
        group = grouped.get(id(action))
        if group is not None:
            if id(group) in done:
                continue
            done.add(id(group))
            words.append("[" + " | ".join(_option(a) for a in group._group_actions) + "]")
        else:
            words.append(_option(action) if action.required else f"[{_option(action)}]")
    return " ".join(words)


def cli_table(parser: argparse.ArgumentParser) -> str:
    """One row per command (per action for commands with actions, but `job`, whose rows are
    the components' business), from the parser itself: it cannot drift from `--help`."""
    rows = ["| command | what it does |", "|---|---|"]
    for name, sub, text in _subcommands(parser):
        actions = _subcommands(sub)
        if actions and name != "job":
            for action, subsub, subtext in actions:
                line = f"ci-gen {name} {action} {synopsis(subsub)}".rstrip()
                rows.append(f"| `{_cell(line)}` | {_cell(subtext)} |")
        else:
            line = f"ci-gen {name} {synopsis(sub)}".rstrip() + (" NAME ..." if actions else "")
            rows.append(f"| `{_cell(line)}` | {_cell(text)} |")
    return "\n".join(rows) + "\n"


def blocks(text: str) -> list[str]:
    return [m.group(2) for m in _BLOCK.finditer(text)]
