"""`ci-gen variables set` against the loopback GitLab API: masked, never printed."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ci_gen.cli import main
from ci_gen.dotenv import parse_dotenv
from ci_gen.errors import CiGenError
from ci_gen.gitlab.variables import mask_problems
from gitlab_fake import (MASK_AND_RAW_REGEX, PROJECT_ID, PROJECT_PATH,  # noqa: F401
                         clean_env, gitlab_fake)

SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "OSS_ACCESS_KEY_SECRET": "p@ss!w#rd$with{odd}chars",
}


@pytest.fixture
def env_file(tmp_path):
    path = tmp_path / "ci.env"
    path.write_text(
        "# credentials for the DVC remotes\n"
        f"export AWS_ACCESS_KEY_ID={SECRETS['AWS_ACCESS_KEY_ID']}\n"
        f"AWS_SECRET_ACCESS_KEY = '{SECRETS['AWS_SECRET_ACCESS_KEY']}'\n"
        f"OSS_ACCESS_KEY_SECRET=\"{SECRETS['OSS_ACCESS_KEY_SECRET']}\"  # from the console\n",
        encoding="utf-8")
    return path


@pytest.fixture
def api(clean_env, gitlab_fake):
    clean_env.setenv("GITLAB_API_TOKEN", gitlab_fake.token)
    return gitlab_fake


def _set(api, env_file, *extra):
    return main(["variables", "set", "--project", str(PROJECT_ID), "--from", str(env_file),
                 "--gitlab-url", api.url, *extra])


def _stored(api):
    return {v["key"]: v for v in api.variables[PROJECT_ID]}


def _assert_no_values(text, values=SECRETS.values()):
    for value in values:
        assert value not in text


def test_creates_masked_variables_and_prints_no_value(api, env_file, capsys):
    assert _set(api, env_file, "--protected", "AWS_SECRET_ACCESS_KEY") == 0
    out, err = capsys.readouterr()
    _assert_no_values(out + err)
    assert api.token not in out + err
    assert "created 3, updated 0, unchanged 0" in out
    stored = _stored(api)
    assert {k: v["value"] for k, v in stored.items()} == SECRETS
    for key, var in stored.items():
        assert var["masked"] and var["raw"] and var["environment_scope"] == "*"
        assert var["protected"] == (key == "AWS_SECRET_ACCESS_KEY")
    assert [s.status for s in api.requests_to("POST", "/variables$")] == [201, 201, 201]


def test_second_run_updates_only_what_changed(api, env_file, capsys):
    assert _set(api, env_file) == 0
    env_file.write_text(env_file.read_text().replace("AKIAIOSFODNN7EXAMPLE",
                                                     "AKIANEWKEY0000000001"))
    capsys.readouterr()
    assert _set(api, env_file) == 0
    out = capsys.readouterr().out
    assert re.search(r"update\s+AWS_ACCESS_KEY_ID", out)
    assert re.search(r"unchanged\s+AWS_SECRET_ACCESS_KEY", out)
    assert "created 0, updated 1, unchanged 2" in out
    assert _stored(api)["AWS_ACCESS_KEY_ID"]["value"] == "AKIANEWKEY0000000001"
    assert len(api.requests_to("PUT", "/variables/")) == 1
    _assert_no_values(out, ["AKIANEWKEY0000000001", *SECRETS.values()])


def test_dry_run_shows_the_plan_and_changes_nothing(api, env_file, capsys):
    api.variables[PROJECT_ID].append({
        "variable_type": "env_var", "key": "AWS_ACCESS_KEY_ID", "value": "AKIAOLDOLDOLDOLD0000",
        "protected": False, "masked": True, "hidden": False, "raw": True,
        "environment_scope": "*", "description": None})
    before = [dict(v) for v in api.variables[PROJECT_ID]]
    assert _set(api, env_file, "--dry-run") == 0
    out = capsys.readouterr().out
    assert re.search(r"update\s+AWS_ACCESS_KEY_ID", out)
    assert re.search(r"create\s+OSS_ACCESS_KEY_SECRET", out)
    assert "dry run: 2 to create, 1 to update, 0 unchanged; nothing sent" in out
    _assert_no_values(out, [*SECRETS.values(), "AKIAOLDOLDOLDOLD0000"])
    assert api.variables[PROJECT_ID] == before
    assert not [s for s in api.seen if s.method in ("POST", "PUT", "DELETE")]


def test_unmaskable_value_is_refused_before_anything_is_sent(api, tmp_path, capsys):
    path = tmp_path / "ci.env"
    path.write_text("GOOD=abcdefgh12345\nSHORT=abc\nSPACED=\"two words here\"\n")
    assert _set(api, path) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "SHORT (line 2: value is shorter than 8 characters)" in err
    assert "SPACED (line 3: value contains whitespace)" in err
    assert "--no-mask SHORT SPACED" in err
    _assert_no_values(err, ["abcdefgh12345", "two words here"])
    assert "abc\n" not in err and api.seen == []


def test_no_mask_stores_such_values_unmasked(api, tmp_path, capsys):
    path = tmp_path / "ci.env"
    path.write_text("TAGS=gpu\nPASSWORD=s3cr3t-Value-99\n")
    assert _set(api, path, "--no-mask", "TAGS") == 0
    stored = _stored(api)
    assert stored["TAGS"]["masked"] is False and stored["TAGS"]["value"] == "gpu"
    assert stored["PASSWORD"]["masked"] is True
    out = capsys.readouterr().out
    assert "s3cr3t-Value-99" not in out and re.search(r"TAGS\s+\(not masked\)", out)


def test_options_must_name_keys_of_the_file(api, env_file, capsys):
    assert _set(api, env_file, "--protected", "NOPE") == 2
    assert "--protected: not in" in capsys.readouterr().err
    assert api.seen == []


def test_project_by_path_and_scoped_duplicates(api, env_file):
    # the same key also exists for another environment: updates must name the scope
    for scope in ("*", "production"):
        api.variables[PROJECT_ID].append({
            "variable_type": "env_var", "key": "AWS_ACCESS_KEY_ID", "value": f"old-{scope}-value",
            "protected": False, "masked": False, "hidden": False, "raw": True,
            "environment_scope": scope, "description": None})
    assert main(["variables", "set", "--project", PROJECT_PATH, "--from", str(env_file),
                 "--gitlab-url", api.url + "/api/v4/"]) == 0
    values = {(v["key"], v["environment_scope"]): v["value"] for v in api.variables[PROJECT_ID]}
    assert values[("AWS_ACCESS_KEY_ID", "*")] == SECRETS["AWS_ACCESS_KEY_ID"]
    assert values[("AWS_ACCESS_KEY_ID", "production")] == "old-production-value"
    assert api.seen[0].path == "/api/v4/projects/mlops%2Fdemo"
    assert all(s.path.startswith(f"/api/v4/projects/{PROJECT_ID}/") for s in api.seen[1:])
    (put,) = api.requests_to("PUT", "/variables/")
    assert put.query["filter[environment_scope]"] == ["*"]


def test_forbidden_and_wrong_token_are_one_line(api, env_file, capsys, clean_env):
    api.can_admin_variables = False
    assert _set(api, env_file) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "403" in err and "Maintainer" in err
    clean_env.setenv("GITLAB_API_TOKEN", "glpat-not-the-right-one-42")
    assert _set(api, env_file) == 1
    err = capsys.readouterr().err.strip()
    assert "401 Unauthorized" in err and "glpat-not-the-right-one-42" not in err
    _assert_no_values(err)


def test_only_a_job_token_explains_what_to_create(api, env_file, capsys, clean_env):
    clean_env.delenv("GITLAB_API_TOKEN")
    clean_env.setenv("CI_JOB_TOKEN", "job-token-value-1234")
    assert _set(api, env_file) == 1
    err = capsys.readouterr().err
    assert "CI_JOB_TOKEN" in err and "project access token" in err and "`api` scope" in err
    assert api.seen == []


def test_unknown_project_is_a_clear_404(api, env_file, capsys):
    assert main(["variables", "set", "--project", "nope/missing", "--from", str(env_file),
                 "--gitlab-url", api.url]) == 1
    assert "404 Project Not Found" in capsys.readouterr().err


# --- dotenv parsing ------------------------------------------------------------------

def test_dotenv_forms():
    text = ("# comment\n\nexport A=plain value # trailing comment\nB='single # not comment'\n"
            'C="line1\\nline2 \\"q\\""\nD=\nE="multi\nline"\n  F  =  spaced  \nG=a#b\n')
    got = {e.key: (e.value, e.line) for e in parse_dotenv(text)}
    assert got == {"A": ("plain value", 3), "B": ("single # not comment", 4),
                   "C": ('line1\nline2 "q"', 5), "D": ("", 6), "E": ("multi\nline", 7),
                   "F": ("spaced", 9), "G": ("a#b", 10)}


@pytest.mark.parametrize("text, message", [
    ("A=1\njust-a-secret-value\n", "f.env:2: expected KEY=VALUE"),
    ("A=1\nB-C=topsecretvalue\n", "f.env:2: invalid key"),
    ('A="topsecretvalue\n', 'f.env:1: unterminated " quote for A'),
    ("A='x' topsecretvalue\n", "f.env:1: unexpected text after the closing quote of A"),
    ("A=topsecretvalue\nA=other\n", "f.env:2: A is already set on line 1"),
])
def test_dotenv_errors_name_the_line_not_the_value(text, message):
    with pytest.raises(CiGenError) as info:
        parse_dotenv(text, "f.env")
    assert str(info.value).startswith(message)
    assert "topsecretvalue" not in str(info.value) and "just-a-secret" not in str(info.value)


@given(st.text(max_size=20))
def test_local_mask_check_agrees_with_gitlabs_rule(value):
    assert (mask_problems(value) == []) == bool(MASK_AND_RAW_REGEX.match(value))
