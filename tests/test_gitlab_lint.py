"""`server_lint` (GitLab's project CI lint API through python-gitlab), against the fake."""

from __future__ import annotations

import pytest

from ci_gen.errors import CiGenError
from ci_gen.gitlab.ci_lint import server_lint
from gitlab_fake import PROJECT_ID, PROJECT_PATH, clean_env, gitlab_fake  # noqa: F401

VALID = "stages: [train]\ntrain:\n  stage: train\n  script: [echo hi]\n"
INVALID = ("stages: [train]\ntrain:\n  stage: train\n  imagee: python:3.11\n"
           "deploy:\n  stage: ship\n  script: [echo]\n")
WARNS = "check:\n  script: [echo]\n  rules:\n    - when: always\n"


@pytest.fixture
def api(clean_env, gitlab_fake):
    clean_env.setenv("GITLAB_API_TOKEN", gitlab_fake.token)
    return gitlab_fake


def test_import_gitlab_inside_ci_gen_gitlab_is_python_gitlab():
    """ci_gen/gitlab/ is named like python-gitlab's package: its absolute imports still reach
    the library, never the package itself."""
    import gitlab

    from ci_gen.gitlab import api as client

    assert gitlab.__name__ == "gitlab" and hasattr(gitlab, "Gitlab")
    assert issubclass(client._bounded_client_class(), gitlab.Gitlab)


def test_valid_configuration(api):
    assert server_lint(VALID, api.url, str(PROJECT_ID)) == (True, [], [])
    (req,) = api.requests_to("POST", "/ci/lint$")
    assert req.path == f"/api/v4/projects/{PROJECT_ID}/ci/lint"


def test_errors_come_back_verbatim(api):
    valid, errors, warnings = server_lint(INVALID, api.url, PROJECT_PATH)
    assert valid is False
    assert errors == api.lint(INVALID)["errors"]
    assert errors == ["jobs:train config contains unknown keys: imagee",
                      "jobs:train config should implement the script:, run:, or trigger: keyword",
                      "deploy job: chosen stage ship does not exist; available stages are .pre, "
                      "train, .post"]
    assert warnings == []


def test_warnings_come_back_verbatim(api):
    valid, errors, warnings = server_lint(WARNS, api.url, PROJECT_ID)
    assert valid is True and errors == []
    assert warnings == api.lint(WARNS)["warnings"] and "workflow:rules" in warnings[0]


def test_yaml_syntax_error(api):
    valid, errors, _ = server_lint("train: [unclosed\n", api.url, PROJECT_ID)
    assert valid is False and errors and errors[0].startswith("(<unknown>): ")


def test_url_from_the_job_environment(api, clean_env):
    clean_env.setenv("CI_SERVER_URL", api.url)
    assert server_lint(VALID, None, PROJECT_ID)[0] is True


def test_wrong_token_is_one_line_without_the_token(api, clean_env):
    clean_env.setenv("GITLAB_API_TOKEN", "glpat-definitely-wrong-0001")
    with pytest.raises(CiGenError) as info:
        server_lint(VALID, api.url, PROJECT_ID)
    msg = str(info.value)
    assert "401 Unauthorized" in msg and "\n" not in msg
    assert "glpat-definitely-wrong-0001" not in msg


def test_job_token_alone_is_not_enough(api, clean_env):
    clean_env.delenv("GITLAB_API_TOKEN")
    clean_env.setenv("CI_JOB_TOKEN", "job-token-0000")
    with pytest.raises(CiGenError, match="only CI_JOB_TOKEN is set.*project access token"):
        server_lint(VALID, api.url, PROJECT_ID)
    assert api.seen == []


def test_unknown_project_and_unreachable_server(api, clean_env):
    with pytest.raises(CiGenError, match="404 Project Not Found"):
        server_lint(VALID, api.url, "group/unknown")
    clean_env.setenv("CI_GEN_GITLAB_RETRIES", "0")
    with pytest.raises(CiGenError, match=r"cannot reach GitLab at http://127\.0\.0\.1:9 "
                                         r"\(connection refused\)"):
        server_lint(VALID, "http://127.0.0.1:9", PROJECT_ID)


def test_server_errors_are_retried_then_reported(api):
    api.fail(2, 500, path_re="/ci/lint$")
    assert server_lint(VALID, api.url, PROJECT_ID)[0] is True
    api.fail(10, 502, path_re="/ci/lint$")
    with pytest.raises(CiGenError, match="answered 502 .* after retries"):
        server_lint(VALID, api.url, PROJECT_ID)
    assert len(api.requests_to("POST", "/ci/lint$")) == 3 + 4


# --- through `ci-gen lint` (acceptance: GitLab's errors verbatim, and a failing exit) -------

COMPONENT = "gitlab.example.com/mlops/ci-gen/train@9.9.9"
WITH_COMPONENT = (f"include:\n  - component: {COMPONENT}\n    inputs:\n      stage: train\n"
                  "stages: [train]\ncheck:\n  stage: train\n  script: [echo hi]\n")


def test_cli_shows_server_errors_verbatim_and_fails(api, tmp_path, capsys):
    from ci_gen.cli import main

    ci = tmp_path / ".gitlab-ci.yml"
    ci.write_text(WITH_COMPONENT)
    argv = ["lint", str(ci), "--gitlab-url", api.url, "--project", PROJECT_PATH]
    assert main(argv) == 1
    (error,) = api.lint(WITH_COMPONENT)["errors"]
    assert error == f"Component '{COMPONENT}' - content not found"
    assert error in capsys.readouterr().out
    api.components.add(COMPONENT)  # the version now exists on the server
    assert main(argv) == 0
    assert "content not found" not in capsys.readouterr().out


def test_cli_wrong_token_is_one_line(api, tmp_path, capsys, clean_env):
    from ci_gen.cli import main

    clean_env.setenv("GITLAB_API_TOKEN", "glpat-cli-wrong-token-777")
    ci = tmp_path / ".gitlab-ci.yml"
    ci.write_text(VALID)
    assert main(["lint", str(ci), "--gitlab-url", api.url, "--project", str(PROJECT_ID)]) == 1
    out, err = capsys.readouterr()
    assert err.strip().count("\n") == 0 and "401 Unauthorized" in err
    assert "glpat-cli-wrong-token-777" not in out + err
