"""The one descriptor: which components exist, their stages and their inputs.

Component headers (`spec: inputs:`), the README inputs tables, `ci-gen init` and input
validation are all derived from this module; nothing here is written twice elsewhere.

Every string input reaches a shell or a YAML position, so each one is constrained by
`options` or an anchored `regex`. The regexes are written in the subset shared by Python's
`re` and RE2 (GitLab's engine): no look-arounds, no back-references.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ci_gen import __version__

from ci_gen.patterns import (  # the descriptor's patterns live there
    RE_JOB_PREFIX,
    RE_STAGE,
    RE_IMAGE,
    RE_PATH,
    RE_REMOTE,
    RE_METRIC,
    RE_ENV_NAME,
    RE_HOST,
    RE_MODEL_NAME,
    RE_MODEL_VERSION,
    RE_HEALTH_PATH,
    RE_KV_LIST,
    KV_MAX_ITEMS,
    RE_COMMAND,
    RE_LOADER,
    RE_PROMETHEUS_URL,
    RE_METRICS_URL,
    RE_WINDOW,
    RE_ISSUE_LABEL,
    RE_DECIMAL,
    RE_FRACTION,
    RE_REMOTE_ROLE,
    RE_OIDC_AUD,
)

# Sentinel for "no default": GitLab treats an input without `default` as required.
REQUIRED: Any = object()

# -- "not set" ----------------------------------------------------------------------------
# GitLab never matches an empty string against an input's `regex` (UntrustedRegexp#match? in
# lib/gitlab/untrusted_regexp.rb requires `text.present?`), so an optional string input cannot
# use "" for "not set". Each says so with one word instead, chosen by what "not set" means;
# every regex accepts its word and the `ci-gen job` commands understand it (and, for older
# pipelines, still the empty string). A value that could collide with the word is refused.
NONE = "none"        # nothing: no gate, no build args, no service env, no image, no data
AUTO = "auto"        # ci-gen derives it: the health path from the model name
DEFAULT = "default"  # DVC's default remote
UNSET = (NONE, AUTO, DEFAULT)


def given(value: str, unset: str) -> str:
    """`value`, or "" when it is the input's "not set" word (or the old empty string)."""
    return "" if value in ("", unset) else value


DEFAULT_CHANGES = [
    "**/*.py",
    "params.yaml",
    "dvc.yaml",
    "dvc.lock",
    "*.dvc",
    "requirements.txt",
    "Dockerfile",
    ".gitlab-ci.yml",
]


@dataclass(frozen=True)
class Input:
    name: str
    description: str
    type: str = "string"  # string | number | boolean | array (GitLab's input types)
    default: Any = REQUIRED
    options: tuple[Any, ...] | None = None
    regex: str | None = None
    # Values no longer offered, each with the message that names what replaces it.
    retired: tuple[tuple[str, str], ...] = ()
    # What an array holds: one-word strings, or `parallel: matrix` entries (the sweep's grid,
    # checked by ci_gen.inputs.check_matrix: GitLab has no `regex` for arrays).
    items: str = "word"

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def spec(self) -> dict[str, Any]:
        """This input as it appears under `spec: inputs:` in a component header."""
        out: dict[str, Any] = {}
        if self.type != "string":
            out["type"] = self.type
        if not self.required:
            out["default"] = list(self.default) if isinstance(self.default, (list, tuple)) else self.default
        if self.options is not None:
            out["options"] = list(self.options)
        if self.regex is not None:
            out["regex"] = self.regex
        out["description"] = self.description
        return out


@dataclass(frozen=True)
class Component:
    name: str
    stage: str
    summary: str
    image: str
    inputs: tuple[Input, ...] = field(default_factory=tuple)

    def input(self, name: str) -> Input:
        for inp in self.inputs:
            if inp.name == name:
                return inp
        raise KeyError(name)

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]


def _common(stage: str, image: str) -> tuple[Input, ...]:
    """Inputs every component takes, in the order they are listed."""
    return (
        Input("job-prefix", "Prefix of every job name; use the same prefix for all ci-gen components "
              "of a pipeline, since jobs refer to each other by name.",
              default="mlops", regex=RE_JOB_PREFIX),
        Input("stage", "Stage the job runs in; declare it in the pipeline's `stages:`.",
              default=stage, regex=RE_STAGE),
        Input("image", "Container image of the job, pinned to a version tag (never `latest`); a registry "
              "prefix from a variable is allowed, e.g. `$CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX/python:3.11.11-bookworm`.",
              default=image, regex=RE_IMAGE),
        Input("tags", "Runner tags, e.g. `[gpu]` to send the job to a GPU runner.",
              type="array", default=[]),
        Input("changes", "Paths whose change triggers the pipeline's ML jobs (`rules: changes`): "
              "code, params, DVC pointers, the CI file.",
              type="array", default=list(DEFAULT_CHANGES)),
    )


# The audience ci-gen's ID tokens are minted for unless `remote-aud` says otherwise: a name of
# its own, so a token a job exchanges for storage credentials is useless to any other service.
OIDC_AUD = "ci-gen"
# The `id_tokens:` entry the components declare, and the variable naming the role when the
# input `remote-role` is `none` (ci-gen job dvc-auth reads both).
ID_TOKEN_VARIABLE = "CI_GEN_ID_TOKEN"
ROLE_VARIABLE = "CI_GEN_REMOTE_ROLE"
# Lifetime of the exchanged credentials: what AWS and Alibaba Cloud both accept (900 s to the
# role's maximum, at most 12 h), and the default both use.
OIDC_MIN_DURATION, OIDC_DEFAULT_DURATION, OIDC_MAX_DURATION = 900, 3600, 43200


def _remote_auth() -> tuple[Input, ...]:
    """Inputs of every component whose jobs read or write a DVC remote (`ci-gen job dvc-auth`)."""
    return (
        Input("remote-auth", "How the job gets credentials for the DVC remotes: `keys` (masked "
              "`AWS_*` / `OSS_*` CI/CD variables) or `oidc` (the job's GitLab ID token exchanged for "
              "short-lived credentials of `remote-role`; no stored keys). See Keyless credentials.",
              default="keys", options=("keys", "oidc")),
        Input("remote-role", "Role `oidc` assumes: an AWS IAM role ARN (`arn:aws:iam::ACCOUNT:role/NAME`) or an "
              "Alibaba Cloud RAM role ARN (`acs:ram::ACCOUNT:role/NAME`); `none`: the CI/CD variable "
              "`CI_GEN_REMOTE_ROLE` names it (one per environment or branch).",
              default=NONE, regex=RE_REMOTE_ROLE),
        Input("remote-aud", "Audience (`aud`) of the job's ID token with `oidc`: a client ID / audience the "
              "cloud's OIDC provider lists.", default=OIDC_AUD, regex=RE_OIDC_AUD),
    )


BUILDAH_IMAGE = "quay.io/buildah/stable:v1.37.3"
BUILDKIT_IMAGE = "moby/buildkit:v0.25.2-rootless"
BUILDERS = ("buildah", "buildkit")
# The CML release `reporter: cml` is written for (its last, 2024-10); never installed by a job.
CML_VERSION = "0.20.6"

# Where a release publishes what the components run on (the tag pipeline in .gitlab-ci.yml).
# Jobs in the runtime image have ci-gen at the component's version; jobs in the user's own
# image install ci-gen from the index named by INDEX_URL_VARIABLE, never by bare name.
# Both follow from one CI/CD variable, PROJECT_VARIABLE: the template project's path on the
# instance that runs the pipeline (default TEMPLATE_PROJECT). A mirror on a self-managed
# instance sets it once (instance or group CI/CD variable, which wins over a job's
# `variables:`). The image names both variables directly: the runner expands `image:` once
# (Go's os.Expand), so a variable whose value holds another variable would stay literal.
TEMPLATE_PROJECT = "mlops/ci-gen"
PROJECT_VARIABLE = "CI_GEN_PROJECT"
RUNTIME_IMAGE_REPO = f"$CI_REGISTRY/${PROJECT_VARIABLE}/runtime"
INDEX_URL_VARIABLE = "CI_GEN_INDEX_URL"
# The ci-gen-only jobs (eval-report, register, dvc-upload, deploy and its jobs, inference) run
# on the runtime of their own version; it has git, which eval-report and dvc-upload need.
# train defaults to it too: an unchanged run restores the model with what the runtime holds
# and installs nothing; the project's requirements are installed only when a stage must run.
# A team's own image (a TensorFlow GPU image) installs ci-gen from the index instead.
RUNTIME_IMAGE = f"{RUNTIME_IMAGE_REPO}:{__version__}"
# What the runtime holds besides ci-gen: DVC and its remotes' plugins, and what the monitor job
# parses and plots with (runtime/install.sh installs the same).
RUNTIME_EXTRAS = "dvc,monitor"


def index_url_default(project: str = TEMPLATE_PROJECT, api: str = "$CI_API_V4_URL") -> str:
    """The template project's PyPI simple index in GitLab's package registry."""
    return f"{api}/projects/{quote(project, safe='')}/packages/pypi/simple"


# The variable of a retraining pipeline: the monitor job starts one with it set to "1"; the ML
# jobs' rules run on it and the train job refreshes imported data (`dvc update`) first.
RETRAIN_VARIABLE = "CI_GEN_RETRAIN"


COMPONENTS: dict[str, Component] = {}


def _register(c: Component) -> None:
    COMPONENTS[c.name] = c


_register(Component(
    name="train",
    stage="train",
    summary="Pull the training data with DVC, then restore the model (`dvc.lock` matches), reuse it from the "
            "run cache, or train it, and say which; model, metrics and plots as artifacts.",
    image=RUNTIME_IMAGE,
    inputs=_common("train", RUNTIME_IMAGE) + (
        Input("requirements", "pip requirements file of the project, installed only when a stage must really run.",
              default="requirements.txt", regex=RE_PATH),
        Input("data", "DVC pointer of the training data, pulled first.",
              default="train_data.dvc", regex=RE_PATH),
        Input("artifacts", "Paths kept as job artifacts (model, metrics, plots).",
              type="array", default=["model/", "dvc.lock"]),
        Input("push-run-cache", "Push outputs and the run cache to the default DVC remote after "
              "training, so the next unchanged run restores instead of retraining. Needs a writable remote.",
              type="boolean", default=True),
    ) + _remote_auth(),
))

# The example's sweep: its learning rate and dropout, 2 x 2 cells.
SWEEP_EXAMPLE_MATRIX = [{"train__learning_rate": ["0.001", "0.003"], "train__dropout": ["0.1", "0.3"]}]
SWEEP_MAX_CELLS = 8

_register(Component(
    name="sweep",
    stage="train",
    summary="Merge requests, opt-in: a hyperparameter sweep as `parallel: matrix` cells, each training "
            "with its params set (an unchanged cell is restored from DVC's run cache); a leaderboard in "
            "the MR report with the best cell marked; a manual job opens a follow-up MR with its params.",
    image=RUNTIME_IMAGE,
    inputs=_common("train", RUNTIME_IMAGE) + (
        Input("matrix", "The grid, as GitLab's `parallel: matrix` entries: each variable names a params.yaml "
              "key with `__` for nesting (`train__learning_rate`), each value is one plain word. The "
              "default is the example's learning rate x dropout.",
              type="array", default=SWEEP_EXAMPLE_MATRIX, items="matrix"),
        Input("collect-stage", "Stage of the leaderboard and apply jobs, after `stage`: the leaderboard takes the cells' artifacts "
              "without `needs:` (GitLab counts a need on a matrix job once per cell and allows 50), so up "
              "to GitLab's 200 cells start.", default="evaluate", regex=RE_STAGE),
        Input("max-cells", "Largest number of cells the sweep may have (checked by `ci-gen lint` and by "
              "every cell at run time), at most GitLab's 200.", type="number", default=SWEEP_MAX_CELLS),
        Input("metric", "Metric the cells are ranked by.", default="accuracy", regex=RE_METRIC),
        Input("direction", "Which way the metric is better: `higher` (accuracy) or `lower` (loss).",
              default="higher", options=("higher", "lower")),
        Input("metrics", "Metrics JSON each cell's pipeline writes.",
              default="model/eval/metrics.json", regex=RE_PATH),
        Input("params", "The params file the cells override and the follow-up MR changes.",
              default="params.yaml", regex=RE_PATH),
        Input("requirements", "pip requirements file of the project, installed only when a cell must really train.",
              default="requirements.txt", regex=RE_PATH),
        Input("data", "DVC pointer of the training data, pulled first.",
              default="train_data.dvc", regex=RE_PATH),
    ) + _remote_auth(),
))

_register(Component(
    name="edge-convert",
    stage="evaluate",
    summary="After train: convert the SavedModel to LiteRT (`.tflite` float32, dynamic-range, int8 "
            "calibrated on the training data), measure each against it on the held-out set (accuracy, "
            "agreement, size, latency p50); table in the MR report, files as artifacts, parity gate.",
    image=RUNTIME_IMAGE,
    inputs=_common("evaluate", RUNTIME_IMAGE) + (
        Input("requirements", "pip requirements file of the project (TensorFlow, what the loader imports), "
              "installed only when a model must really be converted.",
              default="requirements.txt", regex=RE_PATH),
        Input("data", "DVC pointer of the data the loader reads, pulled first and part of the cache key "
              "(`none`: nothing to pull).",
              default="train_data.dvc", regex=RE_PATH),
        Input("model", "SavedModel directory from the train job's artifacts, or a base holding numeric "
              "version directories (the highest is converted).",
              default="model/fashion-mnist", regex=RE_PATH),
        Input("loader", "Project function `MODULE:FUNCTION` returning `(inputs, labels)` for `train` "
              "(the representative set is drawn from it) and `test` (the held-out set).",
              default="edge_data:load", regex=RE_LOADER),
        Input("representative-samples", "Training samples the int8 model is calibrated on.",
              type="number", default=200),
        Input("test-samples", "Held-out samples every model is measured on (at most).",
              type="number", default=2000),
        Input("max-accuracy-drop", "Largest accuracy loss of a LiteRT model against the SavedModel (0 to 1, "
              "a quoted decimal such as `\"0.02\"`).", default="0.02", regex=RE_FRACTION),
        Input("min-agreement", "Smallest share of held-out predictions a LiteRT model must share with the "
              "SavedModel (0 to 1, a quoted decimal).", default="0.95", regex=RE_FRACTION),
    ) + _remote_auth(),
))

_register(Component(
    name="eval-report",
    stage="evaluate",
    summary="Build `report.md` (metrics, diff against the target branch, confusion matrix) and post it "
            "to the merge request, updated in place; optional quality gate.",
    image=RUNTIME_IMAGE,
    inputs=_common("evaluate", RUNTIME_IMAGE) + (
        Input("metrics", "Metrics JSON written by the pipeline.",
              default="model/eval/metrics.json", regex=RE_PATH),
        Input("confusion-matrix", "Confusion matrix image embedded in the report (`none`: no image; "
              "a file named `none` is `./none`).",
              default="model/eval/confusion_matrix.png", regex=RE_PATH),
        Input("reporter", "Who posts the report: `ci-gen` (python-gitlab, default), `cml` "
              f"(the CML CLI, @dvcorg/cml {CML_VERSION}, which the job's `image` must provide: "
              "ci-gen is then installed into it) or `none` (artifact only).",
              default="ci-gen", options=("ci-gen", "cml", "none")),
        Input("gate-metric", "Metric checked by the quality gate (`none`: no gate).",
              default=NONE, regex=RE_METRIC),
        Input("max-drop", "Largest allowed regression of the gate metric against the target branch "
              "(a quoted decimal such as `\"0.01\"`).", default="0.01", regex=RE_DECIMAL),
        Input("gate-direction", "Which way the gate metric is better: `higher` (accuracy) or `lower` (loss).",
              default="higher", options=("higher", "lower")),
        Input("model-name", "Registered model the report links: the version a merge would register and "
              "the latest registered one to compare with, when a model registry is configured "
              "(`MLFLOW_TRACKING_URI`, or `MLFLOW_TRACKING_TOKEN` for GitLab's); `none`: no link.",
              default="fashion-mnist", regex=RE_MODEL_NAME),
    ) + _remote_auth(),
))

_register(Component(
    name="docker-build",
    stage="build",
    summary="Build the serving image without a Docker daemon (Buildah or rootless BuildKit), tag it with "
            "the commit SHA and branch slug, push it to `$CI_REGISTRY_IMAGE`.",
    image=BUILDAH_IMAGE,
    inputs=_common("build", BUILDAH_IMAGE) + (
        Input("builder", "Image builder: `buildah` (default) or `buildkit` (rootless BuildKit, "
              "`buildctl-daemonless.sh`). Kaniko is archived upstream and no longer offered.",
              default="buildah", options=BUILDERS,
              retired=(("kaniko", "Kaniko is archived upstream; use `buildkit` (rootless BuildKit, "
                                  "its replacement in GitLab's docs) or `buildah`"),)),
        Input("buildkit-image", "Image used when `builder` is `buildkit` (a `-rootless` tag of moby/buildkit).",
              default=BUILDKIT_IMAGE, regex=RE_IMAGE),
        Input("dockerfile", "Dockerfile to build.", default="Dockerfile", regex=RE_PATH),
        Input("context", "Build context directory.", default=".", regex=RE_PATH),
        Input("build-args", "Build arguments as `KEY=VALUE,KEY2=VALUE2` (plain words only, at most "
              f"{KV_MAX_ITEMS}; `none`: no build arguments).",
              default=NONE, regex=RE_KV_LIST),
        Input("tls-verify", "Verify the registry's TLS certificate (turn off only for a local test registry).",
              type="boolean", default=True),
    ),
))

_register(Component(
    name="register",
    stage="register",
    summary="Default branch and tags: register the model in the model registry (GitLab's, or the MLflow "
            "server `ci-gen run` starts) as a new SemVer version with params, metrics, lineage and "
            "hash-checked files; one version per distinct model (files and params), whatever the commit.",
    image=RUNTIME_IMAGE,
    inputs=_common("register", RUNTIME_IMAGE) + (
        Input("model-name", "Registered model name.", default="fashion-mnist", regex=RE_MODEL_NAME),
        Input("model-path", "Model directory (or file) uploaded as `model.tar.gz` with a `manifest.json` of "
              "sha256 hashes.", default="model/fashion-mnist", regex=RE_PATH),
        Input("metrics", "Metrics JSON logged on the version (`none`: no metrics).",
              default="model/eval/metrics.json", regex=RE_PATH),
        Input("params", "Params file logged on the version (a missing file logs none).",
              default="params.yaml", regex=RE_PATH),
        Input("data", "DVC pointer of the training data; its md5 is recorded (`none`: not recorded).",
              default="train_data.dvc", regex=RE_PATH),
    ),
))

_register(Component(
    name="dvc-upload",
    stage="upload",
    summary="Default branch, manual: `dvc push` the model to the model remote and commit the pointer "
            "files back with `[skip ci]`, never force-pushing.",
    image=RUNTIME_IMAGE,
    inputs=_common("upload", RUNTIME_IMAGE) + (
        Input("data", "DVC pointer of the training data, pulled so the model's stage can be hashed.",
              default="train_data.dvc", regex=RE_PATH),
        Input("remote", "DVC remote that stores models (`default`: the default remote of `.dvc/config`).",
              default=DEFAULT, regex=RE_REMOTE),
        Input("commit-back", "Commit changed `*.dvc`/`dvc.lock` files back to the branch with `[skip ci]`. "
              "Needs a project or personal access token with `write_repository` in a masked "
              "`GITLAB_API_TOKEN` variable (the job token cannot push by default); checked before `dvc push`. "
              "Needs git in the image (the default image has it).",
              type="boolean", default=True),
    ) + _remote_auth(),
))

_register(Component(
    name="deploy",
    stage="deploy",
    summary="Default branch, manual: run the image on a deploy target (a Docker or Podman engine named by "
            "CI/CD variables; see Deploy targets) behind a health gate at the real URL; an unhealthy "
            "release is rolled back to the previous one. Includes a manual rollback job and the "
            "environment's stop job.",
    image=RUNTIME_IMAGE,
    inputs=_common("deploy", RUNTIME_IMAGE) + (
        Input("environment", "GitLab environment name; also the `resource_group`, so deploys never overlap.",
              default="production", regex=RE_ENV_NAME),
        Input("engine", "`docker` or `podman`: the engine at `DEPLOY_ENGINE_HOST` (unset: the runner's own, "
              "shell runners only); `process`: the project's serve script on the runner host (shell "
              "runners with `tags`). See Deploy targets.",
              default="docker", options=("docker", "podman", "process")),
        Input("host", "Host name or address the service is reached at: the URL `http://<host>:<port>` that "
              "is health-checked and published as `DEPLOY_URL`. Required for `docker`/`podman`; `auto`: "
              "127.0.0.1 (`process` only).",
              default=AUTO, regex=RE_HOST),
        Input("port", "Host port the service listens on.", type="number", default=8501),
        Input("model-name", "Model name served (TF Serving's `MODEL_NAME`); also the registered model "
              "`model-version` names.",
              default="fashion-mnist", regex=RE_MODEL_NAME),
        Input("model-version", "Registered version to deploy: a SemVer version or `latest`, downloaded from "
              "the model registry with every hash checked (`process`: its model directory; `docker`/"
              "`podman`: the image its lineage records). `none`: this pipeline's model. The variable "
              "`CI_GEN_DEPLOY_MODEL_VERSION` overrides it for one pipeline run.",
              default=NONE, regex=RE_MODEL_VERSION),
        Input("model-path", "Exported model directory, used by the `process` engine.",
              default="model/fashion-mnist", regex=RE_PATH),
        Input("serve-script", "Script started by the `process` engine, with TF Serving's flags.",
              default="serve.py", regex=RE_PATH),
        Input("health-path", "Path polled for health (`auto`: `/v1/models/<model-name>`).",
              default=AUTO, regex=RE_HEALTH_PATH),
        Input("health-timeout", "Seconds to wait for the new release to become healthy.",
              type="number", default=120),
        Input("env", f"Environment of the service as `KEY=VALUE,KEY2=VALUE2` (plain words only, at most "
              f"{KV_MAX_ITEMS}; `none`: nothing; secrets belong in masked CI/CD variables).",
              default=NONE, regex=RE_KV_LIST),
    ),
))

_register(Component(
    name="inference",
    stage="inference",
    summary="After deploy: send random test samples to the deployed service with the project's client, "
            "print the predictions, fail below an accuracy threshold.",
    image=RUNTIME_IMAGE,
    inputs=_common("inference", RUNTIME_IMAGE) + (
        Input("client", "Client command; it gets `--url`, `--model-name`, `--samples` and `--min-accuracy`.",
              default="python inference_client.py", regex=RE_COMMAND),
        Input("requirements", "pip requirements file the client needs.",
              default="requirements.txt", regex=RE_PATH),
        Input("data", "DVC pointer of the test data the client samples from (`none`: no data).",
              default="train_data.dvc", regex=RE_PATH),
        Input("model-name", "Model name served.", default="fashion-mnist", regex=RE_MODEL_NAME),
        Input("samples", "Number of random test samples sent.", type="number", default=20),
        Input("min-accuracy", "Smallest sample accuracy that passes (0 to 1, a quoted decimal).",
              default="0.5", regex=RE_FRACTION),
    ) + _remote_auth(),
))

_register(Component(
    name="monitor",
    stage="monitor",
    summary="Scheduled pipelines: compare the served model's live statistics (Prometheus, or a direct "
            "scrape) with the reference profile of its training run (PSI per signal); on drift, open or "
            "update one GitLab issue with the report and start a retraining pipeline.",
    image=RUNTIME_IMAGE,
    # No `changes`: a scheduled pipeline has no diff to look at.
    inputs=_common("monitor", RUNTIME_IMAGE)[:4] + (
        Input("reference", "Reference profile written by the evaluate stage (a DVC output, pulled when absent).",
              default="model/eval/profile.json", regex=RE_PATH),
        Input("model-name", "Model name served (the `model` label of the metrics).",
              default="fashion-mnist", regex=RE_MODEL_NAME),
        Input("prometheus-url", "Prometheus base URL (`none`: scrape `metrics-url` directly; the window "
              "is then the service's lifetime).",
              default=NONE, regex=RE_PROMETHEUS_URL),
        Input("metrics-url", "The service's metrics endpoint for a direct scrape (`auto`: the current "
              "deployment of `environment` on the runner host, `/monitoring/prometheus/metrics`).",
              default=AUTO, regex=RE_METRICS_URL),
        Input("environment", "Environment whose deployment `metrics-url: auto` reads.",
              default="production", regex=RE_ENV_NAME),
        Input("window", "How far back the live statistics go (PromQL range: `1h`, `1d`, `7d`).",
              default="1d", regex=RE_WINDOW),
        Input("threshold", "PSI above which a signal has drifted (0.1: moderate, 0.25: major shift), a quoted "
              "decimal.", default="0.2", regex=RE_DECIMAL),
        Input("signal-thresholds", "Per-signal thresholds as `SIGNAL=PSI,...`, e.g. `predicted_class=0.3` "
              "(`none`: `threshold` for all).",
              default=NONE, regex=RE_KV_LIST),
        Input("min-samples", "Predictions the window needs before it is judged (fewer: exit 4, no alert).",
              type="number", default=100),
        Input("issue-label", "Label of the one drift issue (found again by it; a closed one is not reused).",
              default="model-drift", regex=RE_ISSUE_LABEL),
        Input("retrain", "On drift, start a pipeline on the default branch with `CI_GEN_RETRAIN=1` (train "
              "refreshes imported data and retrains; the eval gate decides). Needs `GITLAB_API_TOKEN` (api scope).",
              type="boolean", default=True),
    ) + _remote_auth(),
))

# Pipeline order; also the order of `stages:` that `ci-gen init` writes.
ORDER = ("train", "sweep", "edge-convert", "eval-report", "docker-build", "register", "dvc-upload", "deploy", "inference",
         "monitor")
assert tuple(COMPONENTS) == ORDER
# Components `ci-gen init` writes only when asked (`--sweep`); the others are always included.
OPT_IN = ("sweep",)
INCLUDED = tuple(n for n in ORDER if n not in OPT_IN)


def get(name: str) -> Component:
    from ci_gen.errors import InputError

    try:
        return COMPONENTS[name]
    except KeyError:
        raise InputError(
            f"unknown component {name!r}; known: {', '.join(ORDER)}"
        ) from None


def default_stages() -> list[str]:
    return list(dict.fromkeys(COMPONENTS[n].stage for n in ORDER))  # edge-convert shares `evaluate`
