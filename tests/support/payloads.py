"""Injection payloads: the pieces (shell, YAML, unicode), the dangerous-looking values the
regexes accept, and hypothesis strategies that mix them with valid values. Every payload
aims at MARKER; the checks assert it never appears."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import string
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from ci_gen import components as desc

# Where payloads aim. Created once per process (removed at exit); every check asserts it
# stays empty.
MARKER_DIR = Path(tempfile.mkdtemp(prefix="ci-gen-injection-"))
MARKER = MARKER_DIR / "PWNED"
atexit.register(shutil.rmtree, MARKER_DIR, ignore_errors=True)
# 200 examples a property keeps a test module under a minute; CI_GEN_FUZZ_EXAMPLES=5000 digs deeper.
EXAMPLES = int(os.environ.get("CI_GEN_FUZZ_EXAMPLES", "200"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def marker_stays_absent():
    """Imported by each injection test module: after its tests, no payload has run."""
    yield
    found = list(MARKER_DIR.iterdir())
    assert not found, f"a payload ran: {found}"

_M = str(MARKER)
SHELL_BITS = [
    ";", f"; touch {_M}", f"| touch {_M}", f"& touch {_M}", f"&& touch {_M}", f"|| touch {_M}",
    f"$(touch {_M})", f"`touch {_M}`", f"> {_M}", f">>{_M}", "< /etc/passwd", f"\ntouch {_M}",
    f"\r\ntouch {_M}", "'", '"', f'"; touch {_M}; "', f"'; touch {_M}; '", "\\",
    f'\\"; touch {_M} #', "$HOME", "${IFS}", "$((1+1))", "#", " ", "\t", "*", "?", "[a]", "~",
    "!", "-rf", "--help", f"--upload-pack=touch {_M}", "$'\\n'", f"<(touch {_M})",
    f">(touch {_M})", f"{{touch,{_M}}}", "$CI_JOB_TOKEN", "${CI_JOB_TOKEN}",
]
YAML_BITS = [
    ": ", " #", "*a", "&a", "!tag", f"!!python/object/apply:os.system ['touch {_M}']", "{", "}",
    "[", "]", "%", "@", "`", "|", ">", "---", "...", "? ", "- ", "<<", "null", "~", "true",
    "0x1f", "1e3", ".inf", ",", "$[[ inputs.job-prefix ]]",
]
UNICODE_BITS = [
    "é", "🙂", "\u2028", "\u2029", "\x85", "\ufeff", "\x00", "\x1b[31m", "\u202e", "\u00a0",
    "ｓ", "٣", "\ud800", "\x7f",
]
ALL_BITS = SHELL_BITS + YAML_BITS + UNICODE_BITS
# Array items that are accepted and still look dangerous (globs, variables, braces).
NASTY_ITEMS = ["model/", "**/*.py", "$CI_JOB_NAME/x", "${CI_COMMIT_SHA}.txt", "{a,b}/c", "[ab]*",
               "~x", "!x", "%@+=,:", "-rf", "a" * 200]


def valid_values(inp: desc.Input) -> st.SearchStrategy:
    """A value GitLab accepts for INP: one of its options, or a match of its regex."""
    if inp.options is not None:
        return st.sampled_from(inp.options)
    if inp.regex == desc.RE_KV_LIST:  # the regex says `*`; the count is checked in code
        return st.from_regex(inp.regex, fullmatch=True).filter(lambda v: v.count(",") < desc.KV_MAX_ITEMS)
    if inp.regex is not None:
        return st.from_regex(inp.regex, fullmatch=True)
    return st.text(alphabet=string.ascii_letters + string.digits, max_size=20)


_word = st.from_regex(r"[a-z0-9._/-]{0,8}", fullmatch=True)
bits = st.sampled_from(ALL_BITS)
mixed = st.lists(st.one_of(bits, _word), min_size=1, max_size=6).map("".join)
long_text = st.one_of(
    st.integers(150, 3000).map(lambda n: "a" * n),
    st.text(min_size=150, max_size=400),
    st.tuples(_word, st.integers(190, 2000)).map(lambda t: t[0] + "x" * t[1]),
)


def string_values(inp: desc.Input) -> st.SearchStrategy:
    v = valid_values(inp)
    text = st.one_of(v, v, v, mixed, st.tuples(v, bits, v).map("".join),
                     st.tuples(v, bits).map("".join), long_text, st.text(max_size=40))
    # YAML hands us typed scalars too.
    typed = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(), st.none(),
                      st.lists(st.text(max_size=3), max_size=2))
    return st.one_of(text, text, text, typed)


def number_values() -> st.SearchStrategy:
    return st.one_of(
        st.integers(-10**6, 10**20), st.floats(),
        st.from_regex(r"-?[0-9]{1,6}(\.[0-9]{1,4})?", fullmatch=True),
        st.sampled_from(["1e3", "0x10", "1_000", " 5", "5 ", "5\n", "٣", "nan", "inf", "-0", "+5",
                         "1;touch " + _M, "$(touch " + _M + ")"]),
        mixed, st.booleans(), st.none())


def boolean_values() -> st.SearchStrategy:
    return st.one_of(st.booleans(), st.sampled_from(["true", "false", "True", "yes", "1", "", "true\n"]),
                     mixed, st.integers(0, 1), st.none())


def array_values() -> st.SearchStrategy:
    item = st.one_of(st.from_regex(r"[A-Za-z0-9_./*-]{1,20}", fullmatch=True), mixed,
                     st.sampled_from(NASTY_ITEMS), bits, long_text)
    lists = st.lists(item, max_size=4)
    return st.one_of(lists, lists.map(json.dumps), mixed, st.lists(st.integers(), min_size=1, max_size=2),
                     st.sampled_from(["[]", "not json", "{}", '["a", 1]', '[""]']))


def values_for(inp: desc.Input) -> st.SearchStrategy:
    return {"string": string_values, "number": lambda _: number_values(),
            "boolean": lambda _: boolean_values(), "array": lambda _: array_values()}[inp.type](inp)


# Accepted by the regexes, and as nasty as they allow: traversal, leading dots and dashes
# inside words, maximum lengths, every punctuation character the class has.
NASTY_VALID: dict[str, list[str]] = {
    desc.RE_PATH: ["..a/..b", "./_-rf", ".git/hooks/pre-commit", "x" * 64, "/".join(["x" * 64] * 12),
                   "none", "./.._--help", "_./_-", "a//b/"],
    desc.RE_REMOTE: ["default", "a-_-", "0" * 64],
    desc.RE_METRIC: ["none", "a.b-c_d", "_" * 64],
    desc.RE_ENV_NAME: ["a--", "prod_-x", "z" * 64],
    desc.RE_HOST: ["0.0.0.0", "a-.-b", "x" * 253],
    desc.RE_MODEL_NAME: ["a..b", "A.-_", "m" * 64],
    desc.RE_HEALTH_PATH: ["auto", "/", "/:/-/./", "/" + ":" * 200],
    desc.RE_KV_LIST: ["none", "A=", "A=--x,B=-rf", "A=@/etc/passwd,B=+1:2/3.4",
                      ",".join(f"K{i}=v" for i in range(32))],
    desc.RE_COMMAND: ["python", "python  -c   x=1", "python ./a.py --x=-y /etc/passwd", "python " + "a" * 190],
    desc.RE_LOADER: ["os:system", "a.b.c.d.e.f.g.h:_", "_" * 64 + ":" + "x" * 64],
    desc.RE_PROMETHEUS_URL: ["none", "http://-.-:99999/", "https://x/../../etc/passwd"],
    desc.RE_METRICS_URL: ["auto", "http://127.0.0.1:1/-/..", "https://a" + "/~" * 50],
    desc.RE_WINDOW: ["1s", "999999w"],
    desc.RE_ISSUE_LABEL: ["a", "x:-.", "Z" * 64],
    desc.RE_MODEL_VERSION: ["none", "latest", "0.0.0", "1.2.3--.-", "9" * 12 + ".0.0-" + "-" * 40],
    desc.RE_DECIMAL: ["0", "000000.000000", "999999.999999"],
    desc.RE_FRACTION: ["0", "1.000000", "0.000001"],
    desc.RE_OIDC_AUD: ["a", "https://x/:@-._", "a" + "/" * 254],
    desc.RE_REMOTE_ROLE: ["none", "arn:aws-us-gov:iam::000000000000:role/-+=,.@/_",
                          "arn:aws:iam::123456789012:role/" + "/" * 512, "acs:ram::0:role/.@-_"],
}


def opt_text(valid: st.SearchStrategy) -> st.SearchStrategy:
    """An option's value: valid, mixed with payload pieces, long, or any text."""
    return st.one_of(valid, valid, mixed, st.tuples(valid, bits).map("".join),
                     st.tuples(bits, valid).map("".join), long_text, st.text(max_size=30))
