"""The shell side of a template: where each `$[[ inputs.x ]]` stands in a script line (a small
bash lexer), whether a value is inert there, and running script lines under bash with
recording stand-ins for the commands they call (ci-gen, dvc, pip, buildah, ...) to compare
a payload run with a run where inert sentinel words stand in its place."""

from __future__ import annotations

import json
import os
import re
import string
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ci_gen import components as desc
from ci_gen.inputs import ruby_number
from ci_gen.render import body

from .payloads import MARKER_DIR

PLACEHOLDER = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")


@dataclass(frozen=True)
class Ctx:
    name: str
    state: str  # U unquoted, D in double quotes, S in single quotes
    split: bool  # inside an unquoted $( ): its output is word-split and globbed
    whole: bool  # the placeholder is a whole shell word on its own


def placeholder_contexts(item: str) -> list[Ctx]:
    """Quoting context of every `$[[ inputs.x ]]` in one script item (a small bash lexer)."""
    out: list[Ctx] = []
    stack: list[tuple[str, bool]] = [("U", False)]  # (state, output-is-split)
    i, n = 0, len(item)
    while i < n:
        state, split = stack[-1]
        m = PLACEHOLDER.match(item, i)
        if m:
            j = m.end()
            before, after = item[i - 1:i], item[j:j + 1]
            if state == "D":
                whole = before == '"' and after == '"'
            else:
                whole = (i == 0 or before in " \t\n;(") and (j == n or after in " \t\n;)")
            out.append(Ctx(m.group(1), "U" if state == "C" else state, split, whole))
            i = j
            continue
        ch = item[i]
        if state == "S":
            if ch == "'":
                stack.pop()
        elif state == "D":
            if ch == "\\":
                i += 1
            elif ch == '"':
                stack.pop()
            elif item.startswith("$(", i):
                stack.append(("C", False))
                i += 1
        else:  # unquoted, at top level or inside $( )
            if ch == "\\":
                i += 1
            elif ch == "'":
                stack.append(("S", split))
            elif ch == '"':
                stack.append(("D", split))
            elif item.startswith("$(", i):
                stack.append(("C", True))
                i += 1
            elif ch == ")" and state == "C":
                stack.pop()
            elif ch == "#" and (i == 0 or item[i - 1] in " \t\n"):
                nl = item.find("\n", i)
                i = n if nl < 0 else nl
                continue
        i += 1
    return out


SAFE_BARE = set(string.ascii_letters + string.digits + "_./=:@+,- ")
NUMBER_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")


def text_of(value: Any) -> str:
    """A value as GitLab writes it into a longer string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, float):
        return ruby_number(value)  # Ruby's Float#to_s: 1.0e-12 where Python says 1e-12
    return str(value)


def assert_inert_in(ctx: Ctx, inp: desc.Input, value: Any) -> None:
    """Static half of (b): the characters the value can hold are inert where it stands."""
    text = text_of(value)
    assert inp.type != "array", f"array input {inp.name} inside a script line"
    if inp.type == "number":
        assert NUMBER_TEXT.fullmatch(text), (inp.name, text)
        return
    if inp.type == "boolean":
        assert text in ("true", "false")
        return
    assert text.isprintable() and "\n" not in text, (inp.name, text)
    if ctx.state == "D":
        assert not set(text) & set('"$`\\'), (inp.name, text)
    elif ctx.state == "S":
        assert "'" not in text, (inp.name, text)
    else:
        assert set(text) <= SAFE_BARE, (inp.name, text)
    if ctx.split:
        assert not set(text) & set("*?[]{}~\t"), (inp.name, text)
        assert not any(w.startswith("-") for w in re.split(r"[ ,]", text) if w), (inp.name, text)
    if ctx.whole and text:
        assert not text.startswith("-"), (inp.name, text)  # would be read as an option



# -- running script items under bash with recording stand-ins ---------------------------

RECORDED = ("ci-gen", "dvc", "pip", "buildah", "npm", "cml", "python", "buildctl-daemonless.sh", "git",
            "curl", "docker", "podman", "kubectl")
# A stand-in reads its stdin when told to (`buildah login --password-stdin`), as the real
# command would: otherwise the writer of the pipe may die of SIGPIPE under `set -o pipefail`.
PRELUDE = (
    "__rec() { case \" $* \" in *' --password-stdin '*) cat >/dev/null;; esac; "
    "{ printf '%s' \"$1\"; shift; for __a in \"$@\"; do printf '\\037%s' \"$__a\"; done; "
    "printf '\\036'; } >>\"$INJ_LOG\"; }\n"
    + "".join(f'{c}() {{ __rec {c} "$@"; }}\n' for c in RECORDED)
)
# Values the CI variables used next to inputs have in the in-process runs.
CI_ENV = {
    "CI_PROJECT_DIR": "/builds/mlops/demo", "CI_REGISTRY_IMAGE": "registry.example.com/mlops/demo",
    "CI_COMMIT_SHA": "f" * 40, "CI_COMMIT_REF_SLUG": "main", "CI_REGISTRY": "registry.example.com",
    "CI_REGISTRY_USER": "u", "CI_REGISTRY_PASSWORD": "p", "DEPLOY_URL": "http://127.0.0.1:1",
}
ENV_REF = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)")


def parse_records(raw: str) -> list[list[str]]:
    return [rec.split("\x1f") for rec in raw.split("\x1e") if rec]


def run_items(items: list[str], env: dict[str, str] | None = None) -> tuple[list[list[str]], list[int]]:
    """Run script items like a job does (in order, in one shell); (argv records, statuses).

    Asserts nothing was created: not the marker, not any file in the work directory.
    """
    with tempfile.TemporaryDirectory(prefix="ci-gen-inj-run-") as tmp:
        work, log = Path(tmp) / "work", Path(tmp) / "argv.log"
        work.mkdir()
        log.touch()
        script = PRELUDE + "".join(f"{item}\n__rec __status $?\n" for item in items)
        full_env = {"PATH": os.environ["PATH"], "HOME": str(work), "LC_ALL": "C.UTF-8",
                    "INJ_LOG": str(log), **CI_ENV, **(env or {})}
        proc = subprocess.run(["bash", "-c", script], cwd=work, env=full_env, capture_output=True,
                              text=True, timeout=60)
        assert not list(MARKER_DIR.iterdir()), f"payload executed: {proc.stdout}{proc.stderr}"
        assert not list(work.iterdir()), f"a script line created files: {list(work.iterdir())}"
        records = parse_records(log.read_text())
    argv = [r for r in records if r[0] != "__status"]
    status = [int(r[1]) for r in records if r[0] == "__status"]
    assert len(status) == len(items), proc.stderr
    return argv, status


def script_items(doc: dict) -> list[str]:
    """Every job's script items, in document order (hidden jobs included)."""
    return [item for job in doc.values() if isinstance(job, dict) and isinstance(job.get("script"), list)
            for item in job["script"]]


def _tokenise(inp: desc.Input, value: str, k: int) -> tuple[str, dict[str, str]] | None:
    """Inert words with the value's by-design word structure, and token -> original text."""
    if inp.regex == desc.RE_COMMAND:  # a command by design: its words split on spaces
        words = value.split(" ")
        if words[0] != "python":
            return None  # only a recorded command can be compared
        parts = ["python"] + [f"zq{k}x{j}qz" if w else "" for j, w in enumerate(words[1:])]
        mapping = {p: w for p, w in zip(parts[1:], words[1:]) if p}
        return " ".join(parts), mapping
    if inp.regex == desc.RE_KV_LIST:  # KEY=VALUE pairs split on commas by design
        segs = value.split(",")
        parts = [f"zq{k}x{j}qz" for j in range(len(segs))]
        return ",".join(parts), dict(zip(parts, segs))
    token = f"zq{k}x0qz"
    return token, {token: value}


def sentinels(comp: desc.Component, values: dict[str, Any],
              names: set[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Sentinel text for each free-form string input among `names` that is set, and the
    token -> original text map to read the sentinel run's argv back."""
    sentinel: dict[str, str] = {}
    tokens: dict[str, str] = {}
    for k, name in enumerate(sorted(names)):
        inp, value = comp.input(name), values[name]
        # An input's "not set" word is compared in the script itself: it stays as it is.
        if inp.type != "string" or inp.options is not None or not value or value in desc.UNSET:
            continue
        made = _tokenise(inp, value, k)
        if made is not None:
            sentinel[name], mapping = made
            tokens.update(mapping)
    return sentinel, tokens


def map_back(records: list[list[str]], tokens: dict[str, str]) -> list[list[str]]:
    def back(arg: str) -> str:
        for tok, orig in sorted(tokens.items(), key=lambda kv: -len(kv[0])):
            arg = arg.replace(tok, orig)
        return arg

    return [[back(a) for a in rec] for rec in records]


def substitute(item: str, values: dict[str, Any], sentinel: dict[str, str]) -> str:
    """A component-mode script item interpolated as GitLab does, sentinels first."""
    return PLACEHOLDER.sub(lambda m: sentinel.get(m.group(1), text_of(values[m.group(1)])), item)


def differential(comp: desc.Component, values: dict[str, Any], inline_doc: dict,
                 given_names: set[str]) -> int:
    """Dynamic half of (b): payload run == sentinel run mapped back. Returns items run."""
    sentinel, tokens = sentinels(comp, values, given_names)
    if not sentinel:
        return 0
    tmpl = script_items(yaml.safe_load(body(comp)))
    real = script_items(inline_doc)
    assert len(tmpl) == len(real)
    chosen = [k for k, item in enumerate(tmpl) if set(PLACEHOLDER.findall(item)) & set(sentinel)]
    if not chosen:
        return 0
    payload_items = [real[k] for k in chosen]
    got, got_status = run_items(payload_items)
    ref, ref_status = run_items([substitute(tmpl[k], values, sentinel) for k in chosen])
    assert got == map_back(ref, tokens), (payload_items, got, ref)
    assert got_status == ref_status
    return len(chosen)
