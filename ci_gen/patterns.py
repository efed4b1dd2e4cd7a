"""Every validation pattern of ci-gen, once: component inputs, CLI options and job flags.

The descriptor (`ci_gen.components`), `ci-gen init`, the jobs and lint import from here;
nothing copies a pattern. Strings, not compiled objects, because the input patterns are also
written into the component headers, where GitLab compiles them with RE2.
"""

# Every regex must compile in RE2 (GitLab's engine): no look-arounds, no back-references, and
# no repetition count above 1000, including nested products such as `(x{0,200}){0,31}`.
# tests/test_gitlab_inputs.py compiles each with RE2 and checks every default the GitLab way.
RE_JOB_PREFIX = r"^[a-z][a-z0-9-]{0,38}$"
RE_STAGE = r"^[a-z][a-z0-9_-]{0,38}$"
# A pinned image: a tag that starts with a digit (or v+digit), optionally a digest.
# `latest`, `stable` and untagged references do not match. GitLab checks inputs before it
# expands variables, so a leading `$VAR/` or `${VAR}/` (the dependency proxy's
# CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX, a mirror) is allowed as written; nowhere else.
RE_IMAGE = (r"^(\$[A-Za-z_][A-Za-z0-9_]{0,63}/|\$\{[A-Za-z_][A-Za-z0-9_]{0,63}\}/)?"
            r"[a-z0-9][a-z0-9._/:-]{0,199}:v?[0-9][A-Za-z0-9._-]{0,127}(@sha256:[a-f0-9]{64})?$")
# A path relative to the project: no spaces, no leading slash, no shell characters.
RE_PATH = r"^[A-Za-z0-9_.][A-Za-z0-9_./-]{0,199}$"
RE_REMOTE = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
RE_METRIC = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$"
RE_ENV_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
RE_HOST = r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$"
RE_MODEL_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
_HEALTH_PATH = r"/[A-Za-z0-9_./:-]{0,200}"
RE_HEALTH_PATH = rf"^(auto|{_HEALTH_PATH})$"
# KEY=VALUE pairs separated by commas, or `none`; values are plain words (no spaces, quotes,
# `$`). RE2 refuses a bounded count of pairs (`(,K=V){0,31}` multiplies out above 1000), so
# the regex says `*` and KV_MAX_ITEMS is checked in code (ci_gen.inputs, ci-gen job deploy).
_KV_KEY = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_KV_VALUE = r"[A-Za-z0-9_./:@+-]{0,200}"
_KV = rf"{_KV_KEY}={_KV_VALUE}"
RE_KV_LIST = rf"^(none|{_KV}(,{_KV})*)$"
KV_MAX_ITEMS = 32
# A command made of plain words: the project's own script and its fixed arguments.
RE_COMMAND = r"^[A-Za-z0-9_./][A-Za-z0-9_./= -]{0,199}$"

# ---- `ci-gen job deploy` / `job stop` (ci_gen.deploy) -------------------------------------
# One key and one value of a KEY=VALUE list, for parsing the list item by item.
RE_KV_KEY = rf"^{_KV_KEY}$"
RE_KV_VALUE = rf"^{_KV_VALUE}$"
# The job gets `auto` already turned into "" (the default /v1/models/<model-name>).
RE_JOB_HEALTH_PATH = rf"^({_HEALTH_PATH})?$"
# The job gets the image expanded (`$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA`): any tag, no `$`.
RE_JOB_IMAGE = r"^[a-z0-9][A-Za-z0-9._/:-]{0,299}(@sha256:[a-f0-9]{64})?$"
# The job gets paths expanded too: `$CI_PROJECT_DIR/model` is absolute and may be longer.
RE_JOB_PATH = r"^/?[A-Za-z0-9_.][A-Za-z0-9_./-]{0,299}$"
# CI_COMMIT_SHORT_SHA names a release when it looks like one.
RE_SHORT_SHA = r"^[0-9a-f]{7,40}$"
