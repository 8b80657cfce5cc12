"""The library names parameters in Python form (``keep='best'``, synthaug.messages); the
``synthaug`` command shows the same messages with its flags (``--keep best``, synthaug.cli.to_flags)."""

from __future__ import annotations

import logging

import pytest

import synthaug
from conftest import expect_error
from synthaug.cli import _LogFormat, build_parser, to_flags
from synthaug.messages import arg


def _parser(command: str):
    return build_parser()._subparsers._group_actions[0].choices[command]


def test_the_api_names_python_parameters(tmp_path):
    with pytest.raises(synthaug.SynthaugError) as info:
        synthaug.fit("digits", out=tmp_path / "run", keep="best", steps=2, progress=False)
    text = str(info.value)
    assert text.startswith("keep='best' needs eval_every=N (") and text.endswith("got eval_every=None")
    assert "--" not in text
    assert not (tmp_path / "run").exists()


def test_the_cli_shows_the_same_error_with_its_flags(capsys, tmp_path):
    line = expect_error(capsys, "fit", ["digits", "--out", tmp_path / "run", "--keep", "best", "--steps", "2",
                                        "--no-progress"],
                        "error: --keep best needs --eval-every N (", "got no --eval-every")
    assert "keep=" not in line and "eval_every" not in line


def test_to_flags_rewrites_known_parameters_only():
    fit = _parser("fit")
    assert to_flags("keep='best' needs eval_every=N", fit) == "--keep best needs --eval-every N"
    assert to_flags("pass resume=True to continue it or force=True to replace it", fit) == \
        "pass --resume to continue it or --force to replace it"
    assert to_flags("batch_size=64 does not split evenly over 3 processes.", fit) == \
        "--batch-size 64 does not split evenly over 3 processes."
    assert to_flags("progress=False, device='cuda:3', choose another out=...", fit) == \
        "--no-progress, --device cuda:3, choose another --out"
    assert to_flags("got eval_every=None, pseudo_labels=None", fit) == "got no --eval-every, --pseudo-labels off"
    assert to_flags("config['g_width']=16 (checkpoint: 8); config=... to choose", fit) == \
        "--set g_width=16 (checkpoint: 8); --set KEY=VALUE to choose"
    # Names the parser has no option for, and words that merely look alike, stay as they are.
    for text in ("foo=1", "keep best, eval every", "my_keep='best'", "x.force=True", "--force", "force=maybe-later"):
        assert to_flags(text, fit) == text
    assert to_flags(f"{arg('test')} with images", _parser("eval")) == "--test with images"
    assert to_flags("test=...", fit) == "test=..."  # fit has no --test


def test_log_lines_of_a_command_show_its_flags():
    record = logging.LogRecord("synthaug.train", logging.INFO, __file__, 1, "to shorten it, steps=%d would do",
                               (60,), None)
    log_format = _LogFormat()
    assert log_format.format(record) == "synthaug: to shorten it, steps=60 would do"  # before the command is known
    log_format.parser = _parser("fit")
    assert log_format.format(record) == "synthaug: to shorten it, --steps 60 would do"
