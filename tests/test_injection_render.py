"""Injection through component inputs: every value is refused with one clear line
(InputError, no traceback), or it is rendered so that
  (a) the inline YAML parses back to exactly that value where the input stands alone (and the
      component header carries it back as the default), and
  (b) no shell runs any part of it as code. Proved by running: the REAL script lines of our
      templates, with the commands they call (ci-gen, dvc, pip, buildah, ...) replaced by bash
      functions that only record their argv, run once with the payload and once with inert
      sentinel words in its place; the argv must be identical once the sentinels are mapped
      back, and the marker file the payloads aim at must never appear.
The harness is in tests/support/ (payloads, shell, injection); ci-gen's own options are in
test_injection_options.py, the same lines in gitlab-ci-local in test_injection_pipeline.py.
"""

from __future__ import annotations

import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ci_gen import components as desc
from ci_gen.errors import InputError
from ci_gen.inputs import resolve
from ci_gen.render import body, render
from support.injection import check_component
from support.payloads import (EXAMPLES, MARKER, NASTY_ITEMS, NASTY_VALID, SETTINGS,  # noqa: F401  (fixture)
                              marker_stays_absent, valid_values, values_for)
from support.shell import SAFE_BARE, Ctx, placeholder_contexts, run_items, script_items


@pytest.mark.parametrize("name", desc.ORDER)
@SETTINGS
@given(data=st.data())
def test_component_inputs_are_refused_or_inert(name, data):
    comp = desc.COMPONENTS[name]
    chosen = data.draw(st.lists(st.sampled_from(comp.inputs), min_size=1, max_size=3,
                                unique_by=lambda i: i.name), label="inputs")
    given_values = {i.name: data.draw(values_for(i), label=i.name) for i in chosen}
    check_component(name, given_values)


@pytest.mark.parametrize("value, text", [(1e-12, "1.0e-12"), (1e16, "1.0e+16"), (2.5e-07, "2.5e-07")])
def test_a_number_in_exponent_form_renders_as_ruby_writes_it(value, text):
    # A draw hypothesis once found: GitLab writes Ruby's Float#to_s into the script.
    assert not check_component("inference", {"samples": value}).refused
    assert f'--samples "{text}"' in render("inference", {"samples": value}, mode="inline")


@pytest.mark.parametrize("name", desc.ORDER)
@settings(SETTINGS, max_examples=max(1, EXAMPLES // 4))  # each example sets every string input
@given(data=st.data())
def test_component_accepts_every_value_its_regex_allows(name, data):
    """The other direction: ci-gen refuses nothing GitLab's regex/options accept, and those
    values are inert too (the regexes are the contract users read in the README)."""
    comp = desc.COMPONENTS[name]
    chosen = [i for i in comp.inputs if i.type == "string"]
    given_values = {i.name: data.draw(valid_values(i), label=i.name) for i in chosen}
    outcome = check_component(name, given_values)
    assert not outcome.refused, outcome.message


def test_templates_put_no_input_in_an_unsafe_shell_position():
    """Where each input lands in our job scripts, and that its regex keeps it inert there:
    in double quotes no `"`, `$`, `\\` or backtick; as bare words only plain characters.
    Checked on the regex itself: each forbidden character, put before, inside and after
    accepted values, is refused."""
    seen = set()
    for name in desc.ORDER:
        comp = desc.COMPONENTS[name]
        for item in script_items(yaml.safe_load(body(comp))):
            assert "`" not in item
            for ctx in placeholder_contexts(item):
                inp = comp.input(ctx.name)
                seen.add((name, ctx.name, ctx.state, ctx.split))
                if inp.type != "string" or inp.options is not None:
                    continue
                assert inp.regex and inp.regex.startswith("^") and inp.regex.endswith("$")
                forbidden = {"D": '"$`\\\n', "S": "'\n"}.get(ctx.state) or "".join(
                    c for c in map(chr, range(32, 127)) if c not in SAFE_BARE) + "\n\t"
                samples = [v for v in [inp.default, *NASTY_VALID.get(inp.regex, [])] if v]
                assert samples, (name, ctx.name)
                for s in samples:
                    for ch in forbidden:
                        for cand in (ch + s, s[:1] + ch + s[1:], s + ch):
                            assert not re.fullmatch(inp.regex, cand), (name, ctx.name, cand)
                            with pytest.raises(InputError):
                                resolve(comp, {ctx.name: cand})
    # The shapes our templates use today; a new one needs a look at this test.
    assert {(state, split) for (_, _, state, split) in seen} == {("D", False), ("D", True), ("U", False)}
    assert {n for (_, n, state, _) in seen if state == "U"} == {"client"}
    assert {n for (_, n, _, split) in seen if split} == {"build-args"}


def test_gitlab_ci_local_echo_and_artifacts_would_run_code():
    """Why the two extra rules exist (gitlab-ci-local 4.73.0 source, dist/index.js): its echo of
    each script line is `echo "<line with \\ " $ escaped>"` (backticks are not), and artifacts
    paths are pasted unquoted into `for _gcl_f in ./<path>; do ...` under bash. So no template
    line may hold a backtick and no array item may hold shell syntax (ci-gen refuses them)."""
    for item in ["model/$(touch x)", "a`id`", "a;b", "a b", "a|b", "a>b", "$IFS", "${IFS}", "a\\b"]:
        with pytest.raises(InputError, match="items must be single words"):
            resolve(desc.get("train"), {"artifacts": [item]})
    for item in NASTY_ITEMS:
        assert resolve(desc.get("train"), {"artifacts": [item]})["artifacts"] == [item]


def test_lexer_classifies_the_shapes_it_must():
    got = placeholder_contexts('a "$[[ inputs.x ]]" $[[ inputs.y ]] "p/$[[ inputs.z ]]" '
                               "for k in $(echo \"$[[ inputs.w ]]\" | tr , ' '); do :; done "
                               "'$[[ inputs.s ]]' \"$(f \"$[[ inputs.q ]]\")\" # $[[ inputs.c ]]")
    assert got == [Ctx("x", "D", False, True), Ctx("y", "U", False, True), Ctx("z", "D", False, False),
                   Ctx("w", "D", True, True), Ctx("s", "S", False, False), Ctx("q", "D", False, True)]


def test_the_differential_catches_a_value_that_is_not_inert():
    """The detector itself: a bare placeholder splits and expands; the check must notice."""
    item = "dvc pull $[[ inputs.x ]]"
    real = [item.replace("$[[ inputs.x ]]", "a b")]
    got, _ = run_items(real)
    ref, _ = run_items([item.replace("$[[ inputs.x ]]", "zq0x0qz")])
    assert got == [["dvc", "pull", "a", "b"]] and ref == [["dvc", "pull", "zq0x0qz"]]
    with pytest.raises(AssertionError, match="payload executed"):
        run_items([f"dvc pull $(touch {MARKER})"])
    MARKER.unlink()
