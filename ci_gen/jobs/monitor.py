"""`ci-gen job monitor`: compare live serving statistics with the model's reference profile.

The work is `ci_gen.monitoring.check`; this module parses and checks the flags.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from ci_gen.components import AUTO, NONE, given
from ci_gen.errors import UsageError, shown
from ci_gen.inputs import NOT_A_MODEL_NAME, NOT_A_PATH, check_flag
from ci_gen.patterns import (KV_MAX_ITEMS, RE_ENV_NAME, RE_GIT_REF, RE_ISSUE_LABEL, RE_KV_KEY,
                             RE_JOB_HTTP_URL, RE_KV_LIST, RE_KV_VALUE, RE_MODEL_NAME, RE_NUMBER, RE_PATH, RE_WINDOW)

EPILOG = """exit status:
  0  no drift (every PSI at or below its threshold)
  1  cannot judge: reference missing or invalid, Prometheus or the service unreachable,
     only TensorFlow Serving's own metrics (requests and latency, no input statistics),
     GitLab API failure (one line on stderr); on drift the issue is written first, so a
     retraining pipeline GitLab refuses (e.g. pipeline variables not allowed for the
     token's role: Settings > CI/CD > Variables, "Minimum role to use pipeline variables")
     is recorded in the issue
  2  bad flags
  3  drift found: report written, issue opened or updated, retraining started
  4  not enough traffic in the window (fewer than --min-samples): report written, no alert
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "monitor", help="compare live serving statistics with the reference profile; alert on drift",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Read the served model's statistics over a window (Prometheus' query API, or "
        "a direct scrape of the service's metrics endpoint), compare each signal of the "
        "reference profile with PSI, write report.md, report.json and drift.png. On drift: open "
        "or update the model's one GitLab issue (by label and marker) and start one retraining "
        "pipeline (CI_GEN_RETRAIN=1) on --ref; needs GITLAB_API_TOKEN (api scope).")
    p.add_argument("--reference", required=True, metavar="FILE", help="reference profile (profile.json)")
    p.add_argument("--model-name", required=True, metavar="NAME", help="the served model's name")
    p.add_argument("--prometheus-url", default=NONE, metavar="URL",
                   help="Prometheus base URL (default: none, scrape --metrics-url directly)")
    p.add_argument("--metrics-url", default=AUTO, metavar="URL",
                   help="the service's metrics endpoint for a direct scrape (default: auto, the "
                   "current deployment of --environment on this host)")
    p.add_argument("--environment", default="production", metavar="ENV",
                   help="environment whose deployment `auto` reads (default: production)")
    p.add_argument("--window", default="1d", metavar="RANGE", help="PromQL range, e.g. 1h, 1d (default: 1d)")
    p.add_argument("--threshold", default="0.2", metavar="PSI", help="PSI above which a signal drifts (default: 0.2)")
    p.add_argument("--signal-thresholds", default=NONE, metavar="NAME=PSI,...",
                   help="per-signal thresholds (default: none)")
    p.add_argument("--min-samples", default="100", metavar="N",
                   help="predictions the window needs before it is judged (default: 100)")
    p.add_argument("--issue-label", default="model-drift", metavar="LABEL", help="label of the drift issue")
    p.add_argument("--retrain", choices=("true", "false"), default="true",
                   help="start a retraining pipeline on drift (default: true)")
    p.add_argument("--ref", default="main", metavar="BRANCH", help="branch the retraining pipeline runs on")
    p.add_argument("--out", default="drift", metavar="DIR", help="report directory (default: drift)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ci_gen.dotenv import parse_kv_list
    from ci_gen.monitoring.check import MonitorOptions, monitor

    if not re.fullmatch(RE_NUMBER, args.min_samples) or float(args.min_samples) < 1 \
            or float(args.min_samples) != int(float(args.min_samples)):
        raise UsageError(f"--min-samples must be a whole number of at least 1, got {shown(args.min_samples)}")
    for flag, value, unset in (("--prometheus-url", args.prometheus_url, NONE), ("--metrics-url", args.metrics_url, AUTO)):
        if value != unset and not re.fullmatch(RE_JOB_HTTP_URL, value):
            raise UsageError(f"{flag} must be {unset} or an http(s) URL without credentials or query, got {shown(value)}")
    if not re.fullmatch(RE_NUMBER, args.threshold):
        raise UsageError(f"--threshold must be a number, got {shown(args.threshold)}")
    opts = MonitorOptions(
        reference=Path(check_flag("--reference", args.reference, RE_PATH, NOT_A_PATH)),
        model=check_flag("--model-name", args.model_name, RE_MODEL_NAME, NOT_A_MODEL_NAME),
        window=check_flag("--window", args.window, RE_WINDOW, "is not a PromQL range (e.g. 1h, 1d)"),
        prometheus_url="" if args.prometheus_url == NONE else args.prometheus_url,
        metrics_url="" if args.metrics_url == AUTO else args.metrics_url,
        environment=check_flag("--environment", args.environment, RE_ENV_NAME, "is not an environment name"),
        threshold=float(args.threshold),
        signal_thresholds=parse_kv_list(given(check_flag("--signal-thresholds", args.signal_thresholds, RE_KV_LIST,
                                                         "is not a list of NAME=PSI"), NONE),
                                        "--signal-thresholds", re.compile(RE_KV_KEY), re.compile(RE_KV_VALUE),
                                        KV_MAX_ITEMS),
        min_samples=int(float(args.min_samples)),
        label=check_flag("--issue-label", args.issue_label, RE_ISSUE_LABEL, "is not an issue label"),
        retrain=args.retrain == "true",
        ref=check_flag("--ref", args.ref, RE_GIT_REF, "is not a branch name"),
        out_dir=Path(check_flag("--out", args.out, RE_PATH, NOT_A_PATH)),
    )
    return monitor(opts, say=lambda line: print(f"ci-gen: monitor: {line}", flush=True),
                   show=lambda line: print(line, flush=True))
