"""Render a component from its Jinja source.

One source, two outputs:
- component mode: `spec: inputs:` header (from the descriptor), `---`, and the jobs with
  `$[[ inputs.x ]]` kept for GitLab to interpolate; this is what `templates/` holds.
- inline mode: the jobs with concrete values, interpolated the way GitLab does it, for
  projects that cannot reach the template project.
"""

from __future__ import annotations

import dataclasses
import json
import re
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ci_gen import __version__
from ci_gen import components as desc
from ci_gen.errors import CiGenError
from ci_gen.inputs import resolve, ruby_number

if TYPE_CHECKING:
    import jinja2

MODES = ("component", "inline")
_PLACEHOLDER = re.compile(r"\$\[\[\s*inputs\.([A-Za-z0-9_-]+)\s*\]\]")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    import jinja2  # here, not at the top: `ci-gen --help` imports this module (issue 22)

    root = resources.files("ci_gen") / "sources"
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    return env


@lru_cache(maxsize=1)
def _dumper() -> type:
    """The YAML dumper of rendered files, made on first use: yaml, like jinja2, is imported by
    the functions that need it, never by `ci-gen --help` (issue 22)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        """Block style, keys in source order, long strings kept on one line, no anchors."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            # Indent list items under their key, as the sources and GitLab's docs do.
            super().increase_indent(flow, False)

    def str_representer(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
        style = "|" if "\n" in data else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)

    Dumper.add_representer(str, str_representer)
    return Dumper


def dump(data: Any) -> str:
    import yaml

    return yaml.dump(data, Dumper=_dumper(), sort_keys=False, width=1000, allow_unicode=True)


def header(component: desc.Component) -> str:
    spec = {"spec": {"inputs": {i.name: i.spec() for i in component.inputs}}}
    return dump(spec)


def body(component: desc.Component) -> str:
    """The jobs of a component with `$[[ inputs.x ]]` placeholders."""
    template = _env().get_template(f"{component.name}.yml.jinja")
    return template.render(component=component, version=__version__,
                           runtime_image=desc.RUNTIME_IMAGE, template_project=desc.TEMPLATE_PROJECT,
                           project_variable=desc.PROJECT_VARIABLE, index_variable=desc.INDEX_URL_VARIABLE,
                           cml_version=desc.CML_VERSION, retrain=desc.RETRAIN_VARIABLE,
                           id_token_variable=desc.ID_TOKEN_VARIABLE)


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, (int, float)):
        return ruby_number(value)  # GitLab writes 0.00001 into a string as 1.0e-05
    return str(value)


def interpolate(node: Any, values: dict[str, Any]) -> Any:
    """Replace `$[[ inputs.x ]]` in keys and values, as GitLab does when it includes a file.

    A scalar that is only a placeholder takes the input's typed value; a placeholder
    inside a longer string is replaced by the value's text.
    """
    if isinstance(node, dict):
        return {interpolate(k, values): interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, values) for v in node]
    if isinstance(node, str):
        whole = _PLACEHOLDER.fullmatch(node.strip())
        if whole:
            return values[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: _as_text(values[m.group(1)]), node)
    return node


def render(name: str, given: dict[str, Any] | None = None, mode: str = "component") -> str:
    component = desc.get(name)
    if mode not in MODES:
        raise CiGenError(f"unknown mode {mode!r}; use one of: {', '.join(MODES)}")
    values = resolve(component, given or {})
    text = body(component)
    if mode == "component":
        if given:
            # Given values become the defaults of this rendering's header.
            component = desc.Component(
                component.name, component.stage, component.summary, component.image,
                tuple(_with_default(i, values[i.name]) for i in component.inputs),
            )
        return f"{header(component)}---\n{text}"
    import yaml

    data = yaml.safe_load(text)
    lines = [
        f"# ci-gen {__version__}: inline rendering of the {name} component.",
        "# Regenerate with `ci-gen render` instead of editing by hand.",
    ]
    return "\n".join(lines) + "\n" + dump(interpolate(data, values))


def _with_default(inp: desc.Input, value: Any) -> desc.Input:
    return dataclasses.replace(inp, default=value)
