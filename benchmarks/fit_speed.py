"""What speeds up a fit step on this machine, measured side by side in one run.

Part 1 (in-process, one family's step through the loop's StepRunner, 32x32 greyscale, batch 64):
fp32 eager against channels_last, bf16 autocast and torch.compile, at the old default width (64)
and the new one (32). Part 2: ``synthaug fit`` on 1 process (all cores) against
``torchrun --nproc_per_node=2`` (one core each), steps/s from the run's log.

Each figure is the median and range of ``--repeats`` timings; the repeats take the variants in
turn, so a change of load on a shared machine falls on all of them alike. Writes
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
from synthaug.models.step import StepRunner

RESULTS = Path(__file__).with_name("results")


class Variant:
    """One way of running a dcgan step (fp32, channels_last, bf16, compile), built and warmed up."""

    def __init__(self, family: str, config: dict, variant: str, size: int = 32):
        torch.manual_seed(0)
        self.family, self.config, self.variant = family, config, variant
        trainer = create_model(family, config, (1, size, size), 10)
        trainer.prepare(1000)
        self.images = torch.rand(64, 1, size, size)
        self.labels = torch.arange(64) % 10
        self.runner = StepRunner("bf16" if variant == "bf16" else "fp32")
        self.compile_s = None
        if variant == "channels_last":
            trainer = trainer.to(memory_format=torch.channels_last)
            self.images = self.images.contiguous(memory_format=torch.channels_last)
        t0 = time.perf_counter()
        if variant == "compile":
            for name in ("generator", "discriminator", "encoder"):
                if hasattr(trainer, name):
                    # Benchmark only: compiled forwards behind the same attribute names.
                    object.__setattr__(trainer, name, torch.compile(getattr(trainer, name)))
        self.trainer, self.rng, self.step = trainer, torch.Generator().manual_seed(1), 0
        self.run(3)  # warm-up (and compilation)
        if variant == "compile":
            self.compile_s = time.perf_counter() - t0
        self.times: list[float] = []

    def run(self, steps: int) -> float:
        t0 = time.perf_counter()
        for _ in range(steps):
            self.runner(self.trainer, self.images, self.labels, self.rng, self.step)
            self.step += 1
        return (time.perf_counter() - t0) / steps

    def row(self) -> dict:
        return {"family": self.family, "config": self.config, "variant": self.variant,
                "seconds_per_step": summary(self.times),
                **({"compile_seconds": round(self.compile_s, 1)} if self.compile_s is not None else {})}


def time_steps(family: str, config: dict, variants: tuple[str, ...], steps: int, repeats: int) -> list[dict]:
    """Seconds per step of each variant; the repeats go round the variants in turn, so a change
    of load on this shared machine falls on all of them alike rather than on one."""
    built = [Variant(family, config, v) for v in variants]
    for _ in range(repeats):
        for variant in built:
            variant.times.append(variant.run(steps))
    return [v.row() for v in built]


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


def fit_rate(data: Path, processes: int, steps: int) -> float:
    """Steps/s of one ``synthaug fit`` (1 process with every core, or torchrun with one core each),
    from its log after 10 warm-up steps."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = ["-m", "synthaug", "fit", str(data), "--out", str(out), "--steps", str(steps), "--no-progress",
               "--checkpoint-every", str(steps), "--sample-every", str(steps)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_process(processes))}
        if processes == 1:
            argv = [sys.executable, *cmd]
        else:
            argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", *cmd]
        subprocess.run(argv, check=True, capture_output=True, env=env)
        rows = list(csv.DictReader((out / "log.csv").open()))
        first, last = rows[9], rows[-1]
        return (int(last["step"]) - int(first["step"])) / (float(last["time_s"]) - float(first["time_s"]))


def threads_per_process(processes: int) -> int:
    return max(1, (os.cpu_count() or 2) // processes)


def fit_steps_per_second(data: Path, process_counts: tuple[int, ...], steps: int, repeats: int) -> list[dict]:
    """Each process count's steps/s; the repeats alternate between the counts (load drift hits both)."""
    rates: dict[int, list[float]] = {p: [] for p in process_counts}
    for _ in range(repeats):
        for processes in process_counts:
            rates[processes].append(fit_rate(data, processes, steps))
    return [{"processes": p, "threads_per_process": threads_per_process(p), "steps_per_second": summary(r)}
            for p, r in rates.items()]


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
        variants = ("fp32", "channels_last", "bf16", *(() if args.skip_compile else ("compile",)))
        for row in time_steps("dcgan", config, variants, args.steps, args.repeats):
            print(json.dumps(row), flush=True)
            step_rows.append(row)
    with tempfile.TemporaryDirectory() as tmp:
        data = write_folder(Path(tmp) / "folder")
        fit_rows = fit_steps_per_second(data, (1, 2), args.fit_steps, args.repeats)
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
