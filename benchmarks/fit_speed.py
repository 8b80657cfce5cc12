"""What speeds up a fit step on this machine, measured side by side in one run.

Part 1 (in-process, one family's step through the loop's StepRunner, 32x32 greyscale, batch 64):
fp32 eager against channels_last, bf16 autocast and torch.compile, at the old default width (64)
and the new one (32). Part 2: ``synthaug fit`` on 1 process (all cores) against
``torchrun --nproc_per_node=2`` (one core each), steps/s from the run's log.

Each figure is the median and range of ``--repeats`` timings. Writes
benchmarks/results/fit_speed.{json,md}.

    python benchmarks/fit_speed.py --repeats 3
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from synthaug.atomic import atomic_write_text
from synthaug.models import create_model
from synthaug.train.step import StepRunner

RESULTS = Path(__file__).with_name("results")


def time_steps(family: str, config: dict, variant: str, steps: int, repeats: int, size: int = 32) -> dict:
    torch.manual_seed(0)
    trainer = create_model(family, config, (1, size, size), 10)
    trainer.prepare(1000)
    images = torch.rand(64, 1, size, size)
    labels = torch.arange(64) % 10
    runner = StepRunner("bf16" if variant == "bf16" else "fp32")
    compile_s = None
    if variant == "channels_last":
        trainer = trainer.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if variant == "compile":
        t0 = time.perf_counter()
        for name in ("generator", "discriminator", "encoder"):
            if hasattr(trainer, name):
                # Benchmark only: compiled forwards behind the same attribute names.
                object.__setattr__(trainer, name, torch.compile(getattr(trainer, name)))
    rng = torch.Generator().manual_seed(1)
    step = 0
    for _ in range(3):  # warm-up (and compilation)
        runner(trainer, images, labels, rng, step)
        step += 1
    if variant == "compile":
        compile_s = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            runner(trainer, images, labels, rng, step)
            step += 1
        times.append((time.perf_counter() - t0) / steps)
    return {"family": family, "config": config, "variant": variant, "seconds_per_step": summary(times),
            **({"compile_seconds": round(compile_s, 1)} if compile_s is not None else {})}


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def write_folder(root: Path, n: int = 1000, size: int = 32) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / str(i % 10)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), "L").save(folder / f"{i}.png")
    return root


def fit_steps_per_second(data: Path, processes: int, steps: int, repeats: int) -> dict:
    rates = []
    for r in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "run"
            cmd = ["-m", "synthaug", "fit", str(data), "--out", str(out), "--steps", str(steps), "--no-progress",
                   "--checkpoint-every", str(steps), "--sample-every", str(steps)]
            threads = max(1, (os.cpu_count() or 2) // processes)
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            if processes == 1:
                argv = [sys.executable, *cmd]
            else:
                argv = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={processes}", *cmd]
            subprocess.run(argv, check=True, capture_output=True, env=env)
            rows = list(csv.DictReader((out / "log.csv").open()))
            first, last = rows[9], rows[-1]  # after warm-up
            rates.append((int(last["step"]) - int(first["step"])) / (float(last["time_s"]) - float(first["time_s"])))
    return {"processes": processes, "threads_per_process": threads, "steps_per_second": summary(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per repeat (part 1)")
    parser.add_argument("--fit-steps", type=int, default=60, help="steps of each fit (part 2)")
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args()

    step_rows = []
    for width in (64, 32):
        config = {"g_width": width, "d_width": width}
        for variant in ("fp32", "channels_last", "bf16", *(() if args.skip_compile else ("compile",))):
            row = time_steps("dcgan", config, variant, args.steps, args.repeats)
            print(json.dumps(row), flush=True)
            step_rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_folder(Path(tmp) / "folder")
        fit_rows = [fit_steps_per_second(data, p, args.fit_steps, args.repeats) for p in (1, 2)]
    for row in fit_rows:
        print(json.dumps(row), flush=True)
    result = {"machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}", "steps": step_rows,
              "fit": fit_rows}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "fit_speed.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(RESULTS / "fit_speed.md", to_markdown(result))


def fmt(s: dict, scale: float = 1.0, digits: int = 3) -> str:
    return f"{s['median'] * scale:.{digits}f} [{s['min'] * scale:.{digits}f}, {s['max'] * scale:.{digits}f}]"


def to_markdown(result: dict) -> str:
    lines = [f"# fit speed ({result['machine']})", "",
             "dcgan step at 32x32 greyscale, batch 64 (median [range] of the repeats):", "",
             "| width | variant | s/step | vs fp32 |", "|---|---|---|---|"]
    base = {}
    for row in result["steps"]:
        width = row["config"]["g_width"]
        median = row["seconds_per_step"]["median"]
        base.setdefault(width, median)
        extra = f" (compile {row['compile_seconds']} s)" if "compile_seconds" in row else ""
        lines.append(f"| {width} | {row['variant']}{extra} | {fmt(row['seconds_per_step'])} | "
                     f"{base[width] / median:.2f}x |")
    lines += ["", "`synthaug fit` on a 1000-image 32x32 folder (default dcgan), steps/s after 10 warm-up steps:", "",
              "| processes | threads each | steps/s |", "|---|---|---|"]
    for row in result["fit"]:
        lines.append(f"| {row['processes']} | {row['threads_per_process']} | {fmt(row['steps_per_second'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
