"""The ``synthaug`` command: fit | sample | export | eval | info | models.

stdout carries machine-readable results (JSON, or the card for ``info``); progress bars,
warnings and errors go to stderr. User mistakes exit with code 2 and one line naming what was
expected and what came.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ._version import __version__
from .atomic import atomic_write, check_writable_target
from .errors import USER_ERRORS, SynthaugError
from .evaluation.cli import add_eval_parser  # light: evaluate itself loads only when run
from .grid import save_grid
from .models import get_family, list_models
from .ownership import NPZ_CARD_KEY, check_replaceable_output
from .runtime import load
from .runtime.load import read_any_card as read_card_of

__all__ = ["UNSET_THRESHOLD", "build_parser", "main", "read_any_card"]


def _parse_set(items: list[str]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SynthaugError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            config[key] = json.loads(value)
        except json.JSONDecodeError:
            config[key] = value
    return config


def _cmd_fit(args: argparse.Namespace) -> dict[str, Any]:
    from .train import fit, peak_memory_mb  # on demand: the training code loads only for this command

    # Options left out are None, so that --resume can tell them from ones that contradict the run.
    run = fit(args.data, out=args.out, model=args.model, config=_parse_set(args.set) or None, steps=args.steps,
              epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, image_size=args.image_size,
              channels=args.channels, skip_bad_files=args.skip_bad_files, resume=args.resume,
              force=args.force, sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
              holdout=args.holdout,
              progress=not args.no_progress, device=args.device, eval_every=args.eval_every, keep=args.keep,
              unlabeled=args.unlabeled, precision=args.precision, on_divergence=args.on_divergence,
              pseudo_labels=args.pseudo_labels, class_balance=args.class_balance, log=args.log)
    if int(os.environ.get("RANK", "0") or 0) > 0:
        return None  # under torchrun, rank 0 alone reports: stdout stays one JSON line
    card = run.card
    pseudo = card.training.get("pseudo_labels")
    kept = {"kept_step": card.training["kept_step"]} if "kept_step" in card.training else {}
    return {"run": str(run.path), "model": card.family, "steps": card.training["steps"],
            "seconds": card.training["seconds"], "image_shape": card.image_shape,
            "num_classes": card.num_classes, "unlabeled_size": card.dataset.get("unlabeled_size", 0),
            **({"pseudo_labelled": pseudo["labelled"]} if pseudo else {}),
            **({"converted": card.dataset["converted"]} if card.dataset.get("converted") else {}),
            "metrics": card.metrics, **kept,
            **({"world_size": card.training["world_size"]} if card.training.get("world_size", 1) > 1 else {}),
            **({"restarts": len(card.training["restarts"])} if card.training.get("restarts") else {}),
            "peak_rss_mb": round(peak_memory_mb(), 1)}


def _parse_classes(text: str | None, class_names: list[str]) -> list[int] | None:
    if text is None:
        return None
    out = []
    for token in (t.strip() for t in text.split(",")):
        if token in class_names:
            out.append(class_names.index(token))
        elif token.lstrip("-").isdigit() and 0 <= int(token) < len(class_names):
            out.append(int(token))
        else:
            raise SynthaugError(f"--classes: expected class names or indices 0..{len(class_names) - 1}, "
                                f"got {token!r}")
    return out


def _cmd_sample(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    if out.suffix not in (".png", ".npz"):
        raise SynthaugError(f"--out: expected a .png grid or an .npz file, got {out.name!r}")
    check_writable_target(out)
    check_replaceable_output(out, args.force)
    sampler = load(args.source)
    card = sampler.card
    classes = _parse_classes(args.classes, card.class_names)
    images, labels = sampler.sample_per_class(args.per_class, classes, seed=args.seed)
    if out.suffix == ".png":
        save_grid(images, args.per_class, out)
    else:
        arrays = {"images": sampler.to_pixels(images), "labels": labels.numpy(),
                  NPZ_CARD_KEY: np.array(card.to_json()),  # synthaug's mark, see ownership.py
                  "class_names": np.array(card.class_names), "pixel_max": np.array(card.pixel_max)}
        atomic_write(out, lambda tmp: _savez(tmp, arrays))
    return {"out": str(out), "count": len(labels), "classes": sorted(set(labels.tolist())), "seed": args.seed}


def _savez(path: Path, arrays: dict) -> None:
    import numpy as np

    with open(path, "wb") as fh:  # a file object, so numpy does not append ".npz" to the temp name
        np.savez_compressed(fh, **arrays)


def _cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from exporters.onnx import export  # on demand: onnx and its exporter load only for this command

    check_replaceable_output(Path(args.out), args.force)
    result = export(args.run, args.out, tolerance=args.tolerance)
    print(f"parity: max abs difference {result.max_abs_diff:.3g} between torch and ONNX Runtime "
          f"on {result.parity_batch} random inputs, {result.equal_fraction:.4%} of values within "
          f"{args.tolerance:g}", file=sys.stderr)
    return result.to_dict()


def read_any_card(path: str):
    """The card of a run directory, ``.safetensors`` or ``.onnx`` file (checked against the
    file's weights or graph)."""
    return read_card_of(path)


def _printable(value: Any) -> str:
    """``str(value)`` with backslashes and non-printable characters escaped (``\\x1b``, ``\\n``):
    card strings come from a model file, and raw escape sequences or newlines could forge
    terminal output."""
    return "".join(ch if ch.isprintable() and ch != "\\" else ch.encode("unicode_escape").decode("ascii")
                   for ch in str(value))


def _pairs(items: dict[str, Any]) -> str:
    return ", ".join(f"{_printable(k)}={_printable(v)}" for k, v in sorted(items.items()))


def _cmd_info(args: argparse.Namespace) -> dict[str, Any] | None:
    card = read_any_card(args.source)
    if args.json:
        return card.to_dict()  # json.dumps escapes control characters itself
    c, h, w = card.image_shape
    lines = [
        f"family:        {_printable(card.family)}",
        f"images:        {c}x{h}x{w} float32 NCHW in [0, 1]; pixels = {card.pixel_values()}",
        f"classes:       {card.num_classes} ({', '.join(map(_printable, card.class_names))})",
        f"noise:         {_printable(card.noise['name'])} {card.noise['shape']} ~ {card.noise['distribution']}",
        "config:        " + _pairs(card.config),
    ]
    if card.dataset:
        lines.append(f"dataset:       {_printable(card.dataset.get('name'))} ({_printable(card.dataset.get('size'))} "
                     f"images, {_printable(card.dataset.get('fingerprint'))})")
    if card.training:
        lines.append("training:      " + _pairs(card.training))
    if card.metrics:
        lines.append("metrics:       " + _pairs(card.metrics))
    lines.append(f"format:        {card.format_version} (synthaug {_printable(card.synthaug_version)})")
    print("\n".join(lines))
    return None


def _cmd_models(args: argparse.Namespace) -> dict[str, Any]:
    return {name: {"description": get_family(name).description,
                   "image_sizes": list(get_family(name).generator_cls.image_sizes)} for name in list_models()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthaug", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"synthaug {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="fit a class-conditional generator and write a run directory")
    p.add_argument("data", help="'digits' (or digits:train / digits:test), an image folder, or an .npz")
    p.add_argument("--model", help=f"generator family: {', '.join(list_models())} (default dcgan)")
    p.add_argument("--out", required=True, help="run directory to create")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=int, help="training steps (default 3000; from 32x32 with fewer than 2000 "
                        "images, 1500)")
    length.add_argument("--epochs", type=int, help="training epochs, instead of --steps")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--batch-size", type=int, help="default 64")
    p.add_argument("--image-size", type=int, help="square size to train at (default: the data's own)")
    p.add_argument("--channels", type=int, choices=(1, 3), help="1 greyscale or 3 RGB (default: from the data)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a model hyper-parameter (repeatable); VALUE is JSON or text")
    p.add_argument("--unlabeled", metavar="PATH", help="more images without labels (a folder, flat or nested, or an "
                   ".npz with 'images'): every family learns from them too")
    p.add_argument("--pseudo-labels", type=_threshold, default=UNSET_THRESHOLD, metavar="CONFIDENCE",
                   help="with --unlabeled: unlabelled images a classifier trained on the labels predicts at least "
                   "this surely join the labelled set with that class (default 0.9; 0 or off: none); the card "
                   "and stderr say how many got which class")
    p.add_argument("--skip-bad-files", action="store_true", help="skip unreadable files instead of failing")
    p.add_argument("--resume", action="store_true", help="continue RUN from its last checkpoint")
    p.add_argument("--force", action="store_true", help="replace an existing RUN; deletes only what fit wrote "
                   "and refuses a directory holding anything else")
    p.add_argument("--sample-every", type=int, default=500, help="steps between sample grids")
    p.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints")
    p.add_argument("--holdout", type=float, help="fraction of each class held out for the family's "
                   "held-out metrics, e.g. bits/dim (default: the family's own)")
    p.add_argument("--eval-every", type=int, metavar="N", help="every N steps (and at the last) log FID, KID, "
                   "precision and recall in the feature space of a small CNN trained on the data (log.csv, card)")
    p.add_argument("--keep", choices=("last", "best"), help="the generator the run holds: the last step's "
                   "(default) or the evaluation step's with the lowest FID (needs --eval-every)")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu; under torchrun, "
                   "each process its own GPU)")
    p.add_argument("--precision", choices=("fp32", "bf16"), help="fp32 (default), or bf16 autocast of the "
                   "forward passes (for GPUs with bf16 units)")
    p.add_argument("--class-balance", type=float, metavar="B", help="how evenly batches cover the classes: 0 "
                   "(default) in the data's class mix, 1 every class alike (rare classes' images repeat more)")
    p.add_argument("--on-divergence", choices=("restart", "stop"), default="restart",
                   help="on a non-finite loss: go back to the last checkpoint with halved learning rates, at most "
                   "3 times (default), or stop")
    p.add_argument("--log", choices=("tensorboard",), help="also write the losses, quality metrics and sample "
                   "grids as TensorBoard events in OUT/tensorboard (needs: pip install \"synthaug[tensorboard]\")")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("sample", help="generate images from a run or an .onnx file")
    p.add_argument("source", help="run directory, .safetensors or .onnx")
    p.add_argument("--per-class", type=int, required=True, help="images per class")
    p.add_argument("--out", required=True, help="grid .png (one row per class) or .npz (images, labels)")
    p.add_argument("--classes", help="comma-separated class names or indices (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing --out that synthaug wrote")
    p.set_defaults(func=_cmd_sample)

    p = sub.add_parser("export", help="export a run to ONNX, with a parity check against torch")
    p.add_argument("run", help="run directory or .safetensors")
    p.add_argument("--out", required=True, help="output .onnx path")
    p.add_argument("--tolerance", type=float, default=1e-4, help="max abs difference allowed (default 1e-4)")
    p.add_argument("--force", action="store_true", help="replace an existing --out that synthaug exported")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("info", help="print the generator card of a run or model file")
    p.add_argument("source", help="run directory, .safetensors or .onnx")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("models", help="list the registered generator families")
    p.set_defaults(func=_cmd_models)

    add_eval_parser(sub)
    return parser


#: fit's "not given" for ``--pseudo-labels`` (see :data:`synthaug.train.pseudo_labels.UNSET`); argparse
#: runs a string default through ``type``, which keeps it as it is.
UNSET_THRESHOLD = "default"


def _threshold(text: str) -> float | str | None:
    """A number, ``None`` for off, or the text itself: fit refuses it in one line (argparse's own
    error would print the whole usage)."""
    if text.strip().lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        return text


# A parameter named in a library message (synthaug.messages): ``name=`` not inside a longer name,
# then a quoted string, a placeholder ``...``, or a word or number (a sentence's last dot left out).
_PARAM = re.compile(r"(?<![\w.\-=])(?P<name>[a-z_][a-z0-9_]*)=(?P<value>'[^']*'|\"[^\"]*\"|\.\.\.|[\w+\-]+(?:\.\w+)*)")


# One key of fit's ``config`` (``config['g_width']=16``): the command line's ``--set g_width=16``.
_CONFIG_ITEM = re.compile(r"(?<![\w.\-=])config\[(['\"])(?P<key>\w+)\1\]=")


def _flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The optional arguments of ``parser`` by the name the library gives them: their ``dest``,
    and for a ``--no-X`` switch also ``X`` (``progress=False`` is ``--no-progress``)."""
    flags = {}
    for action in parser._actions:
        if action.option_strings and action.dest not in (argparse.SUPPRESS, "help"):
            flags[action.dest] = action
            if action.dest.startswith("no_") and isinstance(action, argparse._StoreTrueAction):
                flags[action.dest[3:]] = action
    return flags


def to_flags(message: str, parser: argparse.ArgumentParser) -> str:
    """A library message (parameters named ``name=value``, see :mod:`synthaug.messages`) as the
    command line says it: each parameter ``parser`` has an option for becomes that option.

    ``keep='best'`` -> ``--keep best``, ``eval_every=N`` -> ``--eval-every N``, ``force=True`` ->
    ``--force``, ``progress=False`` -> ``--no-progress``, ``out=...`` -> ``--out``,
    ``eval_every=None`` -> ``no --eval-every`` (``--pseudo-labels off`` where None is a value the
    option takes: its default is not None), ``config=...`` -> ``--set KEY=VALUE``, ``config['k']=1``
    -> ``--set k=1``. Names the parser has no option for (``foo=1``), and anything that is not
    ``name=``, stay as they are.

    Example:
        >>> fit = build_parser()._subparsers._group_actions[0].choices["fit"]
        >>> to_flags("keep='best' needs eval_every=N; pass force=True, not foo=1", fit)
        '--keep best needs --eval-every N; pass --force, not foo=1'
    """
    flags = _flags_of(parser)

    def flag(match: re.Match) -> str:
        name, value = match["name"], match["value"]
        if name == "config" and value == "..." and "set" in flags:  # fit(config={...}) is --set KEY=VALUE
            return "--set KEY=VALUE"
        action = flags.get(name)
        if action is None:
            return match[0]
        option = next((o for o in action.option_strings if o.startswith("--")), action.option_strings[0])
        if action.dest != name:  # progress= for --no-progress
            return option if value == "False" else match[0]
        if isinstance(action, argparse._StoreTrueAction):
            return option if value in ("True", "...") else match[0]
        if value == "...":
            return option
        if value == "None":
            return f"no {option}" if action.default is None else f"{option} off"
        if value[0] in "'\"":
            value = value[1:-1]
        return f"{option} {value}"

    if "set" in flags:
        message = _CONFIG_ITEM.sub(lambda m: f"--set {m['key']}=", message)
    return _PARAM.sub(flag, message)


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The subparser of ``command`` (``fit``, ``eval``, ...)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[command]
    raise KeyError(command)


class _LogFormat(logging.Formatter):
    """``synthaug: warning: ...`` for warnings, ``synthaug: ...`` for what fit reports (pseudo-labels);
    once the command is known, its parameters shown as its flags (:func:`to_flags`)."""

    parser: argparse.ArgumentParser | None = None

    def format(self, record: logging.LogRecord) -> str:
        kind = "warning: " if record.levelno >= logging.WARNING else ""
        text = record.getMessage()
        return f"synthaug: {kind}{to_flags(text, self.parser) if self.parser is not None else text}"


def main(argv: list[str] | None = None) -> int:
    handler = logging.StreamHandler(sys.stderr)
    log_format = _LogFormat()
    handler.setFormatter(log_format)
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("synthaug").setLevel(logging.INFO)  # what fit reports; other libraries: warnings only
    parser = build_parser()
    args = parser.parse_args(argv)
    command = _command_parser(parser, args.command)
    log_format.parser = command
    try:
        result = args.func(args)
    except USER_ERRORS as err:
        # One write call per line: under torchrun every rank reports to the same stderr, and
        # print() writes the text and its newline apart (lines from two ranks ran together).
        sys.stderr.write(f"synthaug {args.command}: error: {to_flags(str(err), command)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"synthaug {args.command}: interrupted\n")
        return 130
    if result is not None:
        print(json.dumps(result, indent=None if args.command != "models" else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
