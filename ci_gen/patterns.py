"""Every validation pattern of ci-gen, once: component inputs, CLI options and job flags.

The descriptor (`ci_gen.components`), `ci-gen init`, the jobs and lint import from here;
nothing copies a pattern. Strings, not compiled objects, because the input patterns are also
written into the component headers, where GitLab compiles them with RE2.
"""

# -- Component inputs -------------------------------------------------------------------------
# Every regex must compile in RE2 (GitLab's engine): no look-arounds, no back-references, and
# no repetition count above 1000, including nested products such as `(x{0,200}){0,31}`.
# tests/test_gitlab_inputs.py compiles each with RE2 and checks every default the GitLab way.
RE_JOB_PREFIX = r"^[a-z][a-z0-9-]{0,38}$"
RE_STAGE = r"^[a-z][a-z0-9_-]{0,38}$"
# A pinned image: a tag that starts with a digit (or v+digit), optionally a digest.
# `latest`, `stable` and untagged references do not match. GitLab checks inputs before it
# expands variables, so up to two leading `$VAR/` or `${VAR}/` segments (the dependency
# proxy's CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX, a mirror, the runtime image's
# `$CI_REGISTRY/$CI_GEN_PROJECT/`) are allowed as written; nowhere else.
RE_IMAGE = (r"^(\$[A-Za-z_][A-Za-z0-9_]{0,63}/|\$\{[A-Za-z_][A-Za-z0-9_]{0,63}\}/){0,2}"
            r"[a-z0-9][a-z0-9._/:-]{0,199}:v?[0-9][A-Za-z0-9._-]{0,127}(@sha256:[a-f0-9]{64})?$")
# A path inside the project: no spaces, no leading slash, no shell characters, no `..`
# segment (a file name may still hold dots: `a..b`, `.dvc`). RE2 has no look-arounds, so
# the segments are spelt out: `.`, or up to two dots then a name character. No segment
# starts with `-`: a job that normalises `./-rf` gets `-rf`, which a command takes for an
# option. Up to 12 segments of up to 66 characters: RE2 refuses nested repeats whose
# product passes 1000, and GitLab an input longer than 1024 characters.
_PATH_SEGMENT = r"(\.|\.{0,2}[A-Za-z0-9_][A-Za-z0-9_.-]{0,63})"
RE_PATH = rf"^{_PATH_SEGMENT}(/{_PATH_SEGMENT}?){{0,11}}$"
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
# A Python function of the project as MODULE:FUNCTION (edge-convert's sample loader).
RE_LOADER = r"^[A-Za-z_][A-Za-z0-9_]{0,63}(\.[A-Za-z_][A-Za-z0-9_]{0,63}){0,7}:[A-Za-z_][A-Za-z0-9_]{0,63}$"
# A registered model version to deploy: `none` (this pipeline's model), `latest` (the highest
# registered version) or a SemVer version as the registry holds it (see RE_SEMVER below).
_SEMVER_CORE = r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]{1,40})?"
RE_MODEL_VERSION = rf"^(none|latest|{_SEMVER_CORE})$"
# A decimal as a string input: the CI/CD Catalog refuses a decimal `default`
# (app/validators/json_schemas/catalog_resource_component_spec.json allows array, boolean,
# integer or string), so thresholds are strings the jobs parse (ci_gen.inputs.parse_decimal).
# Plain digits only: no sign, no exponent, nothing a shell reads; a non-empty match, as
# GitLab's UntrustedRegexp#match? requires.
RE_DECIMAL = r"^[0-9]{1,6}(\.[0-9]{1,6})?$"
# A share from 0 to 1 (accuracy, agreement), in the same form.
RE_FRACTION = r"^(0(\.[0-9]{1,6})?|1(\.0{1,6})?)$"
# A command made of plain words: the project's own script and its fixed arguments.
RE_COMMAND = r"^[A-Za-z0-9_./][A-Za-z0-9_./= -]{0,199}$"

# -- Values of typed inputs, and image references in a pipeline ------------------------------
# Checked by Python's `re` (`ci_gen.inputs`, lint), with `re.fullmatch` unless anchored.

# A number as YAML, a person or GitLab writes it: GitLab interpolates a number input into a
# string the way Ruby prints it, so 0.00001 reaches a job's shell as `1.0e-05`.
RE_NUMBER = r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]{1,3})?"  # fullmatch: no trailing newline
# An array item (tag, path, glob) is one word without shell syntax: GitLab itself never runs
# them through a shell, but gitlab-ci-local (`ci-gen run`) pastes artifacts paths unquoted into
# a bash command, so `$(...)` there would run on the developer's machine. `$NAME`/`${NAME}`
# (CI/CD variables) stay allowed; IFS is not a variable anyone means in a path.
_ITEM_CHAR = r"[^\s`$;|&<>()\\\"'#]"
RE_ARRAY_ITEM = rf"(?:{_ITEM_CHAR}|\$(?!IFS\b)[A-Za-z_][A-Za-z0-9_]*|\$\{{(?!IFS\}})[A-Za-z_][A-Za-z0-9_]*\}})+"
# An image reference in a pipeline, piece by piece (lint says which piece is wrong; the
# `image` input's RE_IMAGE holds the same rules in one regex): a variable registry prefix
# (one or two `$VAR/` segments), a version tag, a digest.
RE_IMAGE_VAR_PREFIX = r"^(\$(\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)/){1,2}"
RE_VERSION_TAG = r"^v?[0-9]"
RE_DIGEST = r"^sha256:[a-f0-9]{64}$"

# -- Command-line options and job flags -----------------------------------------------------
# Checked by Python's `re` only (never written into a component header), with `re.fullmatch`
# unless anchored. The gate's and eval-report's metric flags use RE_METRIC above: they take
# the value of the `gate-metric` input.

# `ci-gen init`: GitLab project paths (group(s)/project, each part a plain name), versions.
RE_PROJECT = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,99}){1,9}"
RE_SEMVER = _SEMVER_CORE
# A release tag: X.Y.Z exactly (the tag pipeline publishes nothing else).
RE_RELEASE_TAG = r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
# The trusted-publishing exchange: an index base URL (https, or http on loopback for a rehearsal).
RE_INDEX_BASE = r"(https://[A-Za-z0-9.-]+(:[0-9]{1,5})?|http://127\.0\.0\.1:[0-9]{1,5})"
# A JSON Web Token (GitLab's `id_tokens`): three base64url parts.
RE_JWT = r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
# `ci-gen init --example`: a DVC storage base (cloud bucket or local directory) and the
# endpoint of an S3-compatible or OSS store.
RE_CLOUD = r"(s3|oss)://[a-z0-9][a-z0-9.-]{1,62}(/[A-Za-z0-9_.-]+)*/?"
RE_LOCAL = r"[A-Za-z0-9_./~-][A-Za-z0-9_./-]{0,300}"
RE_ENDPOINT = r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?"
# `ci-gen job eval-report`: a git ref as the job passes it (a branch, `origin/<branch>`, a
# tag, a SHA, `main~1`; never an option: it starts with a letter, digit or `_`).
RE_GIT_REF = r"^(?!.*\.\.)(?!.*//)[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}(?<![./])([~^][0-9]{0,3}){0,5}$"

# ---- `ci-gen job deploy` / `job stop` (ci_gen.deploy) -------------------------------------
# One key and one value of a KEY=VALUE list, for parsing the list item by item.
RE_KV_KEY = rf"^{_KV_KEY}$"
RE_KV_VALUE = rf"^{_KV_VALUE}$"
# The job gets `auto` already turned into "" (the default /v1/models/<model-name>).
RE_JOB_HEALTH_PATH = rf"^({_HEALTH_PATH})?$"
# The job gets the image expanded (`$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA`): any tag, no `$`.
RE_JOB_IMAGE = r"^[a-z0-9][A-Za-z0-9._/:-]{0,299}(@sha256:[a-f0-9]{64})?$"
# An image by digest, as docker-build publishes it (CI_GEN_IMAGE) and a registered version's
# lineage records it: what a deploy by registry version pulls.
RE_IMAGE_BY_DIGEST = r"^[a-z0-9][A-Za-z0-9._/:-]{0,299}@sha256:[a-f0-9]{64}$"
# A deploy target's engine API (DEPLOY_ENGINE_HOST): a socket path, TLS over TCP, or ssh.
_HOSTNAME = r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}"
_NET_PORT = r"[0-9]{1,5}"
RE_ENGINE_HOST = (rf"^(unix://(/[A-Za-z0-9_.@-]+)+|tcp://{_HOSTNAME}:{_NET_PORT}"
                  rf"|ssh://[a-z_][a-z0-9_.-]{{0,31}}@{_HOSTNAME}(:{_NET_PORT})?)$")
# GitLab's CI_PROJECT_PATH_SLUG and a full commit SHA, as labels of a release on its target.
RE_PROJECT_SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
RE_COMMIT_SHA = r"^[0-9a-f]{40}$"
# CI_COMMIT_SHORT_SHA names a release when it looks like one.
RE_SHORT_SHA = r"^[0-9a-f]{7,40}$"

# ---- `monitor` component / `ci-gen job monitor` (ci_gen.monitoring) ------------------------
_HTTP_URL = r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?"
# Prometheus' base URL: `none` (scrape the service directly) or a URL.
RE_PROMETHEUS_URL = rf"^(none|{_HTTP_URL})$"
# The service's metrics endpoint for a direct scrape: `auto` (the environment's current
# deployment on this runner host) or a URL.
RE_METRICS_URL = rf"^(auto|{_HTTP_URL})$"
RE_JOB_HTTP_URL = rf"^{_HTTP_URL}$"
# A PromQL range: one number and one unit (what `increase(x[1d])` takes).
RE_WINDOW = r"^[1-9][0-9]{0,5}[smhdw]$"
# A GitLab issue label: plain words, so it is safe in a shell and a query string.
RE_ISSUE_LABEL = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
# Names in a reference profile that end up in a PromQL query.
RE_PROM_METRIC = r"^[A-Za-z_:][A-Za-z0-9_:]{0,199}$"
RE_PROM_LABEL = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"

# ---- `sweep` component / `ci-gen job sweep-*` (ci_gen.sweep) -------------------------------
# The `matrix` input is an array of `parallel: matrix` entries (GitLab allows no `regex` on an
# array input): its variable names and values are checked in code (ci_gen.inputs, lint, the
# cell job) with these. A variable names a params.yaml key, nesting written as `__`
# (`train__learning_rate` is train.learning_rate), so it is a shell-safe name; a value is one
# plain word (a number, `true`, `relu`), written into params.yaml, never through a shell.
RE_SWEEP_VARIABLE = r"^[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*(__[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*){0,7}$"
RE_SWEEP_VALUE = r"^[A-Za-z0-9_.+-]{1,64}$"
# The branch apply-best opens its merge request from: ci-gen's prefix and the commit.
RE_SWEEP_BRANCH = r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,199}$"

# -- Keyless credentials (remote-auth: oidc) --------------------------------------------------
# The role an ID token is exchanged for: an AWS IAM role ARN (any partition) or an Alibaba
# Cloud RAM role ARN; `none`: the CI/CD variable CI_GEN_REMOTE_ROLE names it.
_AWS_ROLE = r"arn:aws[a-z-]{0,16}:iam::[0-9]{12}:role/[A-Za-z0-9_+=,.@/-]{1,512}"
_ALIYUN_ROLE = r"acs:ram::[0-9]{1,32}:role/[A-Za-z0-9_.@-]{1,64}"
RE_AWS_ROLE = rf"^{_AWS_ROLE}$"
RE_ALIYUN_ROLE = rf"^{_ALIYUN_ROLE}$"
RE_REMOTE_ROLE = rf"^(none|{_AWS_ROLE}|{_ALIYUN_ROLE})$"
RE_ALIYUN_OIDC_PROVIDER = r"^acs:ram::[0-9]{1,32}:oidc-provider/[A-Za-z0-9_.@-]{1,128}$"
# The ID token's `aud`: what the cloud's OIDC provider lists as a client ID / audience.
RE_OIDC_AUD = r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,254}$"
