"""Print the example pipeline's figures in `ci-gen run`'s runner-like mode (issue 11).

1. a freshly scaffolded example whose ci-gen-only jobs run on the ci-gen runtime image (train
   on the user's python image): the whole pipeline cold, then warm (nothing changed);
2. the same project with those jobs on a plain python image, run up to eval-report: the job
   installs ci-gen itself (`pip install`);
3. a second example whose train job too runs on the runtime image: cold, then warm;
then each job's setup time (job start -> its first `ci-gen job` command) side by side, the
train job's warm/cold ratio (target <= 0.15: warm restores from the remote, no TensorFlow
install) and the whole pipeline cold vs warm. The runtime environment is built (once per
version) before the first run and not counted. Run: `.venv/bin/python benchmarks/runner_mode.py`
(`--train-on-runtime`: section 3 alone).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ci_gen import __version__
from ci_gen.local import runtime
from ci_gen.local.pipeline import RunOptions, run_local

TARGET = 0.15
RUNTIME_JOBS = ("eval-report", "dvc-upload", "deploy", "inference")
TRAIN = ("train",)
IMAGE = f"$CI_REGISTRY/mlops/ci-gen/runtime:{__version__}"


def set_images(project: Path, image: str | None, components: tuple[str, ...] = RUNTIME_JOBS) -> None:
    """COMPONENTS' jobs on IMAGE (None: the components' default image); committed."""
    path = project / ".gitlab-ci.yml"
    ci = yaml.safe_load(path.read_text())
    for inc in ci["include"]:
        if inc["component"].rsplit("/", 1)[1].split("@")[0] in components:
            inputs = inc.setdefault("inputs", {})
            if image:
                inputs["image"] = image
            else:
                inputs.pop("image", None)
    path.write_text(yaml.safe_dump(ci, sort_keys=False))
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qam", "images"],
                   cwd=project, check=True)


def run(project: Path, **opts) -> tuple[float, dict]:
    out = io.StringIO()
    start = time.perf_counter()
    outcome = run_local(RunOptions(directory=project, quiet=True, **{"manual": True, **opts}), out)
    took = time.perf_counter() - start
    if outcome.exit_code != 0:
        sys.stderr.write(out.getvalue()[-5000:])
        raise SystemExit("pipeline failed")
    return took, {r.name: r for r in outcome.results if r.seconds is not None}


def fmt(x: float | None) -> str:
    return f"{x:6.1f} s" if x is not None else "      -"


def train_on_runtime(tmp: str) -> tuple[dict, dict]:
    """A fresh example whose train job too runs on the runtime image: ci-gen is there,
    TensorFlow is installed by the job only when a stage must run. Cold, then warm."""
    project = Path(tmp) / "fmnist-rt"
    subprocess.run([sys.executable, "-m", "ci_gen", "init", str(project), "--example", "fashion-mnist"],
                   check=True, capture_output=True)
    set_images(project, IMAGE, TRAIN)
    return run(project, job="mlops-train")[1], run(project, job="mlops-train")[1]


def print_train_on_runtime(rt_cold: dict, rt_warm: dict) -> None:
    rc, rw = rt_cold["mlops-train"], rt_warm["mlops-train"]
    print(f"train job on the runtime image, cold: {rc.seconds:6.1f} s (setup {fmt(rc.setup).strip()}); "
          f"warm: {rw.seconds:6.1f} s (setup {fmt(rw.setup).strip()}); ratio {rw.seconds / rc.seconds:.2f}")


def main() -> int:
    runtime.runtime_env(runtime.own_wheel(sys.stdout), sys.stdout)  # once per version; not timed
    if sys.argv[1:] == ["--train-on-runtime"]:  # section 3 alone (each part stays a few minutes)
        with tempfile.TemporaryDirectory(prefix="ci-gen-bench-") as tmp:
            print_train_on_runtime(*train_on_runtime(tmp))
        return 0
    with tempfile.TemporaryDirectory(prefix="ci-gen-bench-") as tmp:
        project = Path(tmp) / "fmnist"
        subprocess.run([sys.executable, "-m", "ci_gen", "init", str(project), "--example", "fashion-mnist"],
                       check=True, capture_output=True)
        set_images(project, IMAGE)
        cold, cold_jobs = run(project)
        warm, warm_jobs = run(project)
        set_images(project, None)
        _, pip_jobs = run(project, job="mlops-eval-report")
        rt_cold, rt_warm = train_on_runtime(tmp)
    print(f"ci-gen {__version__}, runner-like mode (`ci-gen run`), example pipeline\n")
    print(f"{'job':<20} {'setup, runtime env':>19} {'setup, pip install ci-gen':>26}   (cold run / plain python image)")
    for name, job in cold_jobs.items():
        image_run = pip_jobs.get(name) if name != "mlops-train" else None
        rt = job.setup if name != "mlops-train" else None
        pip = image_run.setup if image_run else (job.setup if name == "mlops-train" else None)
        print(f"{name:<20} {fmt(rt):>19} {fmt(pip):>26}")
    t_cold, t_warm = cold_jobs["mlops-train"].seconds, warm_jobs["mlops-train"].seconds
    ratio = t_warm / t_cold
    print(f"\ntrain job, cold (installs ci-gen and TensorFlow, trains): {t_cold:6.1f} s")
    print(f"train job, warm (installs ci-gen, restores; no TensorFlow): {t_warm:6.1f} s"
          f"  setup {fmt(warm_jobs['mlops-train'].setup).strip()}")
    print(f"train warm/cold ratio: {ratio:.2f} (target <= {TARGET})")
    print_train_on_runtime(rt_cold, rt_warm)
    print(f"whole pipeline, cold: {cold:6.1f} s; warm: {warm:6.1f} s; ratio {warm / cold:.2f}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
