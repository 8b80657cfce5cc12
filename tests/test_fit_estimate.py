"""fit says, after its first steps, how long the rest will take and how to shorten it (one line)."""

from __future__ import annotations

import re

import pytest

import synthaug
from conftest import TINY
from synthaug.train.callbacks import ESTIMATE_AFTER, duration as _duration


def _fit(out, steps, **kw):
    return synthaug.fit("digits:train", out=out, model="gan", config=TINY["gan"]["config"], steps=steps,
                        batch_size=16, progress=False, **kw)


def _estimates(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("fit: about")]


def test_one_estimate_after_the_first_steps(tmp_path, caplog):
    caplog.set_level("INFO", logger="synthaug")
    _fit(tmp_path / "run", 3 * ESTIMATE_AFTER)
    lines = _estimates(caplog)
    assert len(lines) == 1, lines
    pattern = (rf"fit: about [\d.]+ (s|min|h) left for {2 * ESTIMATE_AFTER} more steps \([\d.]+ s/step over the "
               rf"first {ESTIMATE_AFTER}\); to shorten it, steps={ESTIMATE_AFTER} would take about [\d.]+ (s|min|h) "
               rf"in all")
    assert re.fullmatch(pattern, lines[0]), lines[0]


def test_a_resumed_run_suggests_steps_past_where_it_is(tmp_path, caplog):
    # Resumed at step 30 of 120: a suggestion below 30 would be a run that is already over.
    _fit(tmp_path / "run", 30)
    caplog.set_level("INFO", logger="synthaug")
    _fit(tmp_path / "run", 120, resume=True)
    lines = _estimates(caplog)
    assert len(lines) == 1, lines
    pattern = (rf"fit: about [\d.]+ (s|min|h) left for {120 - 30 - ESTIMATE_AFTER} more steps \([\d.]+ s/step over "
               rf"the first {ESTIMATE_AFTER}\); to shorten it, steps=60 would take about [\d.]+ (s|min|h) from step 30")
    assert re.fullmatch(pattern, lines[0]), lines[0]


def test_no_estimate_when_little_is_left(tmp_path, caplog):
    caplog.set_level("INFO", logger="synthaug")
    _fit(tmp_path / "run", ESTIMATE_AFTER + 5)
    assert _estimates(caplog) == []


@pytest.mark.parametrize("seconds, text", [(0.4, "0 s"), (42, "42 s"), (450, "7.5 min"), (7560, "2.1 h")])
def test_durations_read_naturally(seconds, text):
    assert _duration(seconds) == text
