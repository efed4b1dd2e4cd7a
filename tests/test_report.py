"""`ci-gen report` against the loopback GitLab API, driving python-gitlab for real."""

from __future__ import annotations

import email.utils
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ci_gen.cli import main
from ci_gen.gitlab.notes import NOTE_LIMIT, fit_body, marker, rewrite_images
from gitlab_fake import PROJECT_ID, SHA, clean_env, gitlab_fake, job_env  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00fake-confusion-matrix" * 10
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def report(tmp_path):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "confusion_matrix.png").write_bytes(PNG)
    path = out / "report.md"
    path.write_text("## Metrics\n\n| metric | value |\n|---|---|\n| accuracy | 0.91 |\n\n"
                    "![confusion matrix](confusion_matrix.png)\n"
                    "![badge](https://img.shields.io/badge/x-y-green)\n", encoding="utf-8")
    return path


@pytest.fixture
def mr_env(job_env, gitlab_fake, clean_env):
    gitlab_fake.add_mr(PROJECT_ID, 7, sha=SHA)
    clean_env.setenv("CI_MERGE_REQUEST_IID", "7")
    return job_env


def _notes(fake, iid=7):
    return fake.notes[(PROJECT_ID, iid)]


def test_twice_in_an_mr_job_leaves_one_updated_note_with_the_image(mr_env, gitlab_fake,
                                                                     report, capsys):
    assert main(["report", str(report)]) == 0
    first = capsys.readouterr().out
    assert "merge request !7" in first and "created note" in first

    report.write_text(report.read_text().replace("0.91", "0.93"), encoding="utf-8")
    assert main(["report", str(report)]) == 0
    second = capsys.readouterr().out
    assert "updated note" in second

    notes = _notes(gitlab_fake)
    assert len(notes) == 1
    body = notes[0]["body"]
    assert "0.93" in body and "0.91" not in body
    assert body.startswith(marker(f"ci-gen-report:{PROJECT_ID}:mlops-eval-report"))
    # uploaded through the project (numeric id), and the link points at the latest upload
    assert len(gitlab_fake.uploads) == 2
    up = gitlab_fake.uploads[-1]
    assert up["content"] == PNG and up["filename"] == "confusion_matrix.png"
    assert f"![confusion matrix]({up['url']})" in body
    assert "https://img.shields.io/badge/x-y-green" in body  # remote images untouched
    assert [s.path for s in gitlab_fake.requests_to("POST", "/uploads$")] == \
        [f"/api/v4/projects/{PROJECT_ID}/uploads"] * 2
    assert gitlab_fake.token not in first + second


def test_finds_the_open_mr_of_the_commit_without_an_iid(job_env, gitlab_fake, report, capsys):
    gitlab_fake.add_mr(PROJECT_ID, 3, sha=SHA, state="merged")
    gitlab_fake.add_mr(PROJECT_ID, 9, sha=SHA, state="opened")
    assert main(["report", str(report)]) == 0
    assert "merge request !9 (open merge request of commit" in capsys.readouterr().out
    assert len(_notes(gitlab_fake, 9)) == 1 and not _notes(gitlab_fake, 3)
    assert gitlab_fake.requests_to("GET", f"/repository/commits/{SHA}/merge_requests$")


def test_without_an_mr_comments_on_the_commit(job_env, gitlab_fake, report, capsys):
    assert main(["report", str(report)]) == 0
    assert "commented on commit" in capsys.readouterr().out
    comments = gitlab_fake.commit_comments[(PROJECT_ID, SHA)]
    assert len(comments) == 1 and "/uploads/" in comments[0]["note"]


def test_target_commit_wins_over_the_mr(mr_env, gitlab_fake, report):
    assert main(["report", str(report), "--target", "commit"]) == 0
    assert len(gitlab_fake.commit_comments[(PROJECT_ID, SHA)]) == 1
    assert not _notes(gitlab_fake)


def test_target_mr_without_an_mr_fails(job_env, gitlab_fake, report, capsys):
    assert main(["report", str(report), "--target", "mr"]) == 1
    err = capsys.readouterr().err
    assert "no open merge request" in err and len(err.strip().splitlines()) == 1
    assert not gitlab_fake.commit_comments


def test_finds_its_note_on_a_later_page_and_leaves_others_alone(mr_env, gitlab_fake, report):
    gitlab_fake.max_per_page = 4  # as GitLab's cap of 100, just smaller: forces pagination
    mk = marker(f"ci-gen-report:{PROJECT_ID}:mlops-eval-report")
    for i in range(6):
        gitlab_fake.add_note(PROJECT_ID, 7, f"review comment {i}")
    quoted = gitlab_fake.add_note(PROJECT_ID, 7, f"someone quoted it {mk}")  # another user
    ours = gitlab_fake.add_note(PROJECT_ID, 7, f"{mk}\nold report", author=gitlab_fake.user)
    for i in range(5):
        gitlab_fake.add_note(PROJECT_ID, 7, f"later comment {i}")

    assert main(["report", str(report)]) == 0
    notes = _notes(gitlab_fake)
    assert len(notes) == 13
    assert "accuracy" in ours["body"] and "old report" not in ours["body"]
    assert quoted["body"] == f"someone quoted it {mk}"
    assert len(gitlab_fake.requests_to("GET", "/notes$")) >= 2  # really paginated


def test_custom_watermarks_keep_separate_notes(mr_env, gitlab_fake, report):
    assert main(["report", str(report), "--watermark", "train"]) == 0
    assert main(["report", str(report), "--watermark", "eval"]) == 0
    assert main(["report", str(report), "--watermark", "eval"]) == 0
    assert len(_notes(gitlab_fake)) == 2


def test_watermark_that_would_break_the_comment_is_refused(mr_env, gitlab_fake, report, capsys):
    assert main(["report", str(report), "--watermark", "a -->b"]) == 2
    assert "--watermark" in capsys.readouterr().err
    assert gitlab_fake.seen == []


def test_without_a_token_keeps_the_artifact_and_succeeds(job_env, gitlab_fake, report, capsys,
                                                         clean_env):
    clean_env.delenv("GITLAB_API_TOKEN")
    assert main(["report", str(report)]) == 0
    out = capsys.readouterr().out
    assert (f"ci-gen: no GitLab token (GITLAB_API_TOKEN or REPO_TOKEN): report kept as a job "
            f"artifact at {report} ({job_env['CI_JOB_URL']}/artifacts/browse)") in out
    assert "CI_JOB_TOKEN cannot post notes" in out and "`api` scope" in out
    assert gitlab_fake.seen == []


def test_repo_token_is_read_like_cml(mr_env, gitlab_fake, report, clean_env):
    clean_env.delenv("GITLAB_API_TOKEN")
    clean_env.setenv("REPO_TOKEN", gitlab_fake.token)
    assert main(["report", str(report)]) == 0
    assert len(_notes(gitlab_fake)) == 1


def test_outside_a_job_keeps_the_report(clean_env, report, capsys):
    clean_env.setenv("GITLAB_API_TOKEN", "glpat-whatever-123456")
    assert main(["report", str(report)]) == 0
    assert "not in a GitLab job" in capsys.readouterr().out


def test_wrong_token_is_one_clear_line_without_the_token(mr_env, gitlab_fake, report):
    wrong = "glpat-WRONG-but-secret-987654"
    env = {**os.environ, "GITLAB_API_TOKEN": wrong}
    proc = subprocess.run([sys.executable, "-m", "ci_gen", "report", str(report)], env=env,
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ci-gen: error: ")
    assert "401 Unauthorized" in lines[0] and "GITLAB_API_TOKEN" in lines[0]
    assert wrong not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert not _notes(gitlab_fake)


def test_forbidden_note_says_what_the_token_needs(mr_env, gitlab_fake, report, capsys):
    gitlab_fake.fail(1, 403, method="POST", path_re="/notes$", body={"message": "403 Forbidden"})
    assert main(["report", str(report)]) == 1
    err = capsys.readouterr().err
    assert "403 Forbidden" in err and "`api` scope" in err and gitlab_fake.token not in err


def test_transient_errors_are_retried(mr_env, gitlab_fake, report):
    gitlab_fake.fail(2, 500, method="POST", path_re="/notes$")
    gitlab_fake.fail(1, 502, method="POST", path_re="/uploads$")
    assert main(["report", str(report)]) == 0
    assert len(_notes(gitlab_fake)) == 1
    assert [s.status for s in gitlab_fake.requests_to("POST", "/notes$")] == [500, 500, 201]


def test_rate_limit_waits_are_capped(mr_env, gitlab_fake, report):
    # An hour in both of GitLab's Retry-After forms; CI_GEN_GITLAB_MAX_WAIT=0 caps them.
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    gitlab_fake.fail(1, 429, headers={"Retry-After": "3600"}, path_re="/notes$")
    gitlab_fake.fail(1, 429, headers={"Retry-After": later}, path_re="/notes$")
    assert main(["report", str(report)]) == 0
    assert [s.status for s in gitlab_fake.requests_to("GET", "/notes$")] == [429, 429, 200]


def test_persistent_errors_fail_after_bounded_retries(mr_env, gitlab_fake, report, capsys):
    gitlab_fake.fail(100, 503, method="POST", path_re="/uploads$")
    assert main(["report", str(report)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "503" in err and "after retries" in err and "confusion_matrix.png" in err
    assert len(gitlab_fake.requests_to("POST", "/uploads$")) == 4  # 1 + CI_GEN_GITLAB_RETRIES
    assert not _notes(gitlab_fake)


def test_unreachable_server_is_one_line(mr_env, report, capsys, clean_env):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clean_env.setenv("CI_SERVER_URL", f"http://127.0.0.1:{port}")
    clean_env.setenv("CI_GEN_GITLAB_RETRIES", "1")
    assert main(["report", str(report)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "connection refused" in err


def test_slow_server_times_out_with_one_line(mr_env, gitlab_fake, report, capsys, clean_env):
    clean_env.setenv("CI_GEN_GITLAB_TIMEOUT", "0.3")
    clean_env.setenv("CI_GEN_GITLAB_RETRIES", "1")
    gitlab_fake.fail(2, 0, delay=1.0, path_re="/user$")
    assert main(["report", str(report)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "did not answer in time" in err


def test_huge_report_is_cut_to_the_note_limit(mr_env, gitlab_fake, report):
    report.write_text("| row | value |\n|---|---|\n" + "| x | 1.000000 |\n" * 80_000,
                      encoding="utf-8")  # ~1.3 M characters
    assert main(["report", str(report)]) == 0
    body = _notes(gitlab_fake)[0]["body"]
    assert len(body) <= NOTE_LIMIT
    assert body.startswith("<!-- ci-gen-report ")
    assert f"{mr_env['CI_JOB_URL']}/artifacts/browse" in body.splitlines()[-1]


def test_fit_body_keeps_short_bodies_and_cuts_long_ones():
    assert fit_body("short", None, limit=100) == "short"
    cut = fit_body("line\n" * 100, "https://gl/-/jobs/1", limit=200)
    assert len(cut) <= 200 and "https://gl/-/jobs/1/artifacts/browse" in cut
    assert "truncated" in cut


def test_rewrite_images_uploads_each_local_file_once(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a b.png").write_bytes(b"a")
    (tmp_path / "c.png").write_bytes(b"c")
    md = ("![one](<img/a b.png>)\n![again](img/a%20b.png \"title\")\n"
          '<img src="c.png" width="200">\n[ref]: c.png\n'
          "```\n![in code](c.png)\n```\n"
          "![remote](https://x/y.png) ![data](data:image/png;base64,AAAA) ![gone](nope.png)\n")
    uploaded, warnings = [], []

    def upload(path):
        uploaded.append(path.name)
        return f"/uploads/{len(uploaded)}/{path.name}"

    out, n = rewrite_images(md, tmp_path, upload, warnings.append)
    assert sorted(uploaded) == ["a b.png", "c.png"] and n == 2
    a_url = f"/uploads/{uploaded.index('a b.png') + 1}/a b.png"
    c_url = f"/uploads/{uploaded.index('c.png') + 1}/c.png"
    assert f"![one]({a_url})" in out and f'![again]({a_url} "title")' in out
    assert f'<img src="{c_url}" width="200">' in out and f"[ref]: {c_url}" in out
    assert "```\n![in code](c.png)\n```" in out
    assert "![remote](https://x/y.png)" in out and "![gone](nope.png)" in out
    assert warnings == ["image not found, link left as is: nope.png"]


@pytest.mark.parametrize("content, why", [
    (b"", "is empty: nothing to post"),
    (b"  \n\n", "is empty: nothing to post"),
    (PNG, "is a binary file, not markdown"),
    ("## Métriques\n".encode("latin-1"), "is not UTF-8 text (byte 4)"),
])
def test_unpostable_report_is_one_line_before_any_request(mr_env, gitlab_fake, tmp_path, capsys,
                                                           content, why):
    path = tmp_path / "report.md"
    path.write_bytes(content)
    assert main(["report", str(path)]) == 1
    out = capsys.readouterr()
    assert out.err == f"ci-gen: error: report {path} {why}\n" and out.out == ""
    assert gitlab_fake.seen == []
