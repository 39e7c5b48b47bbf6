# SPDX-License-Identifier: MIT
"""Training benchmark: surrogates x models x seeds on the built-in digits data set.

For every (model, surrogate, seed) it runs bnn2hw's two-stage training (BiPer sec. 5.1.3) with
the library defaults (``TrainConfig``: 30 + 30 epochs, learning rates 0.1 / 0.01 and latent
rates from ``latent_learning_rates``, ``w0 = 20``) and records the final (stage-2, fully binary) test
accuracy, the test accuracy at the end of stage 1 and the mean wall-clock seconds per epoch.

Results go to ``benchmarks/results/training.json`` (raw, one record per run, rewritten after
every run so an interrupted benchmark keeps what it finished) and ``training_table.md`` (table,
command, machine, date). ``training.md`` is that table plus a hand-written comparison with the
papers; the script never overwrites it.

Quick check::

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py --seeds 0 --epochs1 2 --epochs2 2 \\
        --models mlp --surrogates ste,biper --out /tmp/bench

Full run (what ``results/training.md`` reports)::

    OMP_NUM_THREADS=1 python benchmarks/bench_training.py --jobs 2
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_SURROGATES = ["ste", "clipped-ste", "biper", "sine", "triangle", "arctan-sine",
                      "sawtooth", "fda"]
HERE = Path(__file__).resolve().parent


def run_one(job: dict) -> dict:
    """Train one model; runs in a worker process with one thread."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from bnn2hw.data import load_digits
    from bnn2hw.nn.models import build_model, default_spec
    from bnn2hw.train import TrainConfig, accuracy, epoch_seconds, seed_everything, train_two_stage

    torch.set_num_threads(1)
    data = load_digits()
    spec = default_spec(job["model"], data.in_shape, data.num_classes)
    spec["surrogate"].update(name=job["surrogate"], w0=job["w0"])
    seed_everything(job["seed"])
    model = build_model(spec)
    cfg = TrainConfig(epochs1=job["epochs1"], epochs2=job["epochs2"], seed=job["seed"], threads=1)
    t0 = time.perf_counter()
    history, used = train_two_stage(model, data, cfg, progress=False)
    wall = time.perf_counter() - t0
    stage1 = [h for h in history if h["stage"] == 1]
    return {**job, "test_acc": accuracy(model, data.x_test, data.y_test),
            "stage1_acc": stage1[-1]["test_acc"] if stage1 else None,
            "seconds_per_epoch": epoch_seconds(history), "wall_seconds": wall,
            "lr1": used.latent_lr1, "lr2": used.latent_lr2, "n_test": int(len(data.y_test))}


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarize(records: list[dict]) -> list[dict]:
    """One row per (model, surrogate): mean and sample std over seeds."""
    rows = []
    keys = []
    for r in records:
        k = (r["model"], r["surrogate"])
        if k not in keys:
            keys.append(k)
    for model, sur in keys:
        rs = [r for r in records if r["model"] == model and r["surrogate"] == sur]
        acc_m, acc_s = _mean_std([100 * r["test_acc"] for r in rs])
        s1 = [100 * r["stage1_acc"] for r in rs if r["stage1_acc"] is not None]
        s1_m, s1_s = _mean_std(s1)
        sec = statistics.fmean(r["seconds_per_epoch"] for r in rs)
        rows.append({"model": model, "surrogate": sur, "seeds": sorted(r["seed"] for r in rs),
                     "acc_mean": acc_m, "acc_std": acc_s, "stage1_mean": s1_m,
                     "stage1_std": s1_s, "sec_per_epoch": sec, "lr1": rs[0]["lr1"],
                     "lr2": rs[0]["lr2"]})
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return (f"{cpu}, {os.cpu_count()} logical CPUs (shared with other jobs), "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def table(rows: list[dict]) -> str:
    lines = ["| model | surrogate | test acc % (mean ± std) | stage-1 acc % | s/epoch | latent lr1 / lr2 |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['surrogate']} | {r['acc_mean']:.2f} ± {r['acc_std']:.2f} "
                     f"| {r['stage1_mean']:.2f} ± {r['stage1_std']:.2f} | {r['sec_per_epoch']:.2f} "
                     f"| {r['lr1']:.3g} / {r['lr2']:.3g} |")
    return "\n".join(lines)


def write_outputs(out: Path, records: list[dict], meta: dict) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(records)
    (out / "training.json").write_text(json.dumps({"meta": meta, "summary": rows,
                                                   "runs": records}, indent=1))
    md = [f"# Training benchmark (digits)", "", f"- command: `{meta['command']}`",
          f"- machine: {meta['machine']}", f"- date: {meta['date']} (git {meta['git_commit']})",
          f"- {len(records)} runs, {meta['epochs1']} + {meta['epochs2']} epochs, w0 = {meta['w0']}, "
          f"{meta['jobs']} worker processes x 1 thread, total {meta['total_seconds'] / 60:.1f} min",
          "", table(rows), ""]
    (out / "training_table.md").write_text("\n".join(md))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mlp,cnn")
    p.add_argument("--surrogates", default=",".join(DEFAULT_SURROGATES))
    p.add_argument("--cnn-surrogates", default=None,
                   help="surrogates for the CNN if different (to save time)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs1", type=int, default=30)
    p.add_argument("--epochs2", type=int, default=30)
    p.add_argument("--w0", type=float, default=20.0)
    p.add_argument("--jobs", type=int, default=2, help="parallel worker processes (1 thread each)")
    p.add_argument("--out", type=Path, default=HERE / "results")
    args = p.parse_args(argv)

    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = []
    for model in args.models.split(","):
        surs = args.surrogates if model != "cnn" or not args.cnn_surrogates else args.cnn_surrogates
        for sur in surs.split(","):
            for seed in seeds:
                jobs.append({"model": model, "surrogate": sur, "seed": seed, "w0": args.w0,
                             "epochs1": args.epochs1, "epochs2": args.epochs2})
    cmd = "OMP_NUM_THREADS=1 python benchmarks/bench_training.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True,
                                capture_output=True).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    meta = {"command": cmd.strip(), "machine": machine(),
            "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "git_commit": commit, "jobs": args.jobs, "epochs1": args.epochs1,
            "epochs2": args.epochs2, "w0": args.w0}
    records: list[dict] = []
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with ctx.Pool(processes=max(args.jobs, 1), maxtasksperchild=4) as pool:
        for rec in pool.imap_unordered(run_one, jobs):
            records.append(rec)
            records.sort(key=lambda r: (jobs.index({k: r[k] for k in jobs[0]}),))
            write_outputs(args.out, records, {**meta, "total_seconds": time.perf_counter() - t0})
            print(f"[{len(records)}/{len(jobs)}] {rec['model']:4s} {rec['surrogate']:12s} "
                  f"seed {rec['seed']}: test {100 * rec['test_acc']:.2f}%  stage 1 "
                  f"{100 * (rec['stage1_acc'] or 0):.2f}%  {rec['seconds_per_epoch']:.2f} s/epoch",
                  flush=True)
    rows = write_outputs(args.out, records, {**meta, "total_seconds": time.perf_counter() - t0})
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
