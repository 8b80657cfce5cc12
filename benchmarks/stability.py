"""Do the default hyper-parameters of every family train without diverging on both built-in sets?

Fits every family (``--models``) on every set (``--sets``, default ``digits`` and
``photos:train``: 8x8 grey and 32x32 RGB) for every seed, with the family's defaults (or the
``--set`` overrides), through the public :func:`synthaug.fit` with ``on_divergence="stop"``, so
a non-finite loss ends the fit and counts as a divergence instead of being retried with halved
learning rates. The fits are short (``--steps``; slow families can get fewer with
``FAMILY=N``): the VAE divergences seen on photos came at steps 11 to 57, and a default-length
fit of every family on 32x32 RGB takes hours on a CPU.

    OMP_NUM_THREADS=1 python benchmarks/stability.py --steps 300 pixelrnn=15
    OMP_NUM_THREADS=1 python benchmarks/stability.py --models vae --sets photos:train \
        --set g_width=64 --set e_width=64 --steps 150 --name stability_vae_width64

Writes benchmarks/results/NAME.json and NAME.md (NAME: ``stability``): per family and set, the
seeds run, how many diverged (and where), and the last logged losses of each seed. Each finished
fit is also appended to NAME.partial.jsonl, so ``--resume`` continues an interrupted run.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import synthaug
from synthaug.atomic import atomic_write_text
from synthaug.cli import _parse_set as parse_overrides  # fit --set's own KEY=VALUE parsing
from synthaug.errors import SynthaugError

RESULTS = Path(__file__).parent / "results"
FAMILIES = ("gan", "dcgan", "vae", "pixelrnn")
SETS = ("digits", "photos:train")


def steps_per_family(entries: list[str], families: list[str]) -> dict[str, int]:
    """``["300", "pixelrnn=40"]`` -> ``{"gan": 300, ..., "pixelrnn": 40}``: a bare number is every
    family's, ``FAMILY=N`` overrides one."""
    steps: dict[str, int] = {}
    default = None
    for entry in entries:
        name, _, value = entry.rpartition("=")
        if name and name not in families:
            raise SystemExit(f"--steps: {name!r} is not among --models {', '.join(families)}")
        if not value.isdigit() or int(value) < 1:
            raise SystemExit(f"--steps: expected a positive integer or FAMILY=N, got {entry!r}")
        if name:
            steps[name] = int(value)
        else:
            default = int(value)
    missing = [f for f in families if f not in steps and default is None]
    if missing:
        raise SystemExit(f"--steps: no step count for {', '.join(missing)}")
    return {f: steps.get(f, default) for f in families}


def fit_once(family: str, data: str, seed: int, steps: int, workdir: Path, config: dict) -> dict:
    """One short fit; ``diverged_at`` is the step of the first non-finite loss, or None."""
    t0 = time.perf_counter()
    try:
        run = synthaug.fit(data, out=workdir / f"{family}_{data.replace(':', '_')}_{seed}", model=family,
                           config=config, steps=steps, seed=seed, progress=False, on_divergence="stop",
                           sample_every=steps, checkpoint_every=steps)
    except SynthaugError as err:
        if "diverged" not in str(err):
            raise
        at = str(err).split("diverged at step ", 1)[1].split(":", 1)[0]
        return {"seed": seed, "diverged_at": int(at), "message": str(err),
                "seconds": round(time.perf_counter() - t0, 1)}
    last = run.log()[-1]
    losses = {k: v for k, v in last.items() if k not in ("step", "epoch", "time_s")}
    return {"seed": seed, "diverged_at": None, "last_step": int(last["step"]), "last_losses": losses,
            "seconds": round(time.perf_counter() - t0, 1)}


def read_partial(path: Path, config: dict) -> dict[tuple, dict]:
    """The fits an interrupted run finished with the same overrides, by (family, set, seed, steps)."""
    if not path.is_file():
        return {}
    done = {}
    for line in path.read_text().splitlines():
        run = json.loads(line)
        if run.pop("config") == config:
            done[(run.pop("family"), run.pop("set"), run["seed"], run.pop("steps"))] = run
    return done


def markdown(result: dict) -> str:
    overrides = ", ".join(f"`{k}={v}`" for k, v in result["config"].items())
    lines = [f"# Stability of the default hyper-parameters{' with ' + overrides if overrides else ''}", "",
             f"`{result['command']}` ({result['machine']['platform']}, torch {result['machine']['torch']}, "
             f"{result['machine']['threads']} thread(s)). `on_divergence=\"stop\"`: a non-finite loss ends the "
             "fit and counts as diverged.", "",
             "| family | set | steps | seeds | diverged | last loss per seed | s per fit |",
             "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        runs = row["runs"]
        diverged = [f"seed {r['seed']} at step {r['diverged_at']}" for r in runs if r["diverged_at"] is not None]
        losses = ", ".join("-" if r["diverged_at"] is not None else _main_losses(r["last_losses"]) for r in runs)
        seconds = sum(r["seconds"] for r in runs) / len(runs)
        lines.append(f"| {row['family']} | {row['set']} | {row['steps']} | {len(runs)} | "
                     f"{len(diverged)}{' (' + '; '.join(diverged) + ')' if diverged else ''} | {losses} | "
                     f"{seconds:.0f} |")
    lines += ["", "Last loss: `loss` where the family logs one, else `loss_d/loss_g`; `-`: diverged."]
    return "\n".join(lines) + "\n"


def _main_losses(losses: dict) -> str:
    if "loss" in losses:
        return f"{losses['loss']:.4g}"
    return "/".join(f"{losses[k]:.3g}" for k in ("loss_d", "loss_g") if k in losses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(FAMILIES))
    parser.add_argument("--sets", nargs="+", default=list(SETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--steps", nargs="+", default=["300"],
                        help="training steps per fit: N for every family, FAMILY=N for one")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a hyper-parameter for every family run, as fit --set (default: none)")
    parser.add_argument("--name", default="stability", help="results file stem")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--resume", action="store_true",
                        help="reuse the fits an interrupted run finished (RESULTS/NAME.partial.jsonl)")
    args = parser.parse_args()
    steps = steps_per_family(args.steps, args.models)
    config = parse_overrides(args.set)

    args.results.mkdir(parents=True, exist_ok=True)
    partial = args.results / f"{args.name}.partial.jsonl"  # finished fits, so --resume can skip them
    done = read_partial(partial, config) if args.resume else {}
    if not args.resume:
        partial.unlink(missing_ok=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.models:
            for data in args.sets:
                runs = []
                for seed in args.seeds:
                    key = (family, data, seed, steps[family])
                    runs.append(done.get(key) or fit_once(family, data, seed, steps[family], Path(tmp), config))
                    if key not in done:
                        line = json.dumps({"family": family, "set": data, "steps": steps[family], "config": config,
                                           **runs[-1]})
                        with open(partial, "a") as fh:
                            fh.write(line + "\n")
                        print(line, file=sys.stderr, flush=True)
                rows.append({"family": family, "set": data, "steps": steps[family], "seeds": args.seeds,
                             "diverged": sum(r["diverged_at"] is not None for r in runs), "runs": runs})

    result = {
        "benchmark": "stability", "on_divergence": "stop", "config": config,
        "machine": {"threads": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
        "command": " ".join(["python", "benchmarks/stability.py", *sys.argv[1:]]),
        "rows": rows,
    }
    atomic_write_text(args.results / f"{args.name}.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.results / f"{args.name}.md", markdown(result))
    partial.unlink()
    print(markdown(result))


if __name__ == "__main__":
    main()
