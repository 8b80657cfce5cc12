"""Issue 9, section 5: ``SyntheticDataset(train_ds, generator=<family>, unlabeled=pool)`` fits a
generator on first use, caches it keyed by the data and settings, and reuses it; ``generator=``
also takes a sampler or a path, ``sampler=`` stays as its old name; bad input is one line."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import threading

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import synthaug
from synthaug import Run, SynthaugError, SyntheticDataset
from synthaug.train import cache
from synthaug.train.cache import cache_root, cached_sampler, fit_directory
from synthaug.data.allocation import DEFAULT_RATIO
from synthaug.augment.dose_check import fill
from synthaug.data import load_data, per_class_subset
from synthaug.data.unlabeled import load_unlabeled
from synthaug.layout import CHECKPOINT_FILE, LOG_FILE, WEIGHTS_FILE

STEPS = 20
FAMILY = "gan"  # the fastest family
_train, _test = load_data("digits:train"), load_data("digits:test")


def _to_255(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.uint16) * 255 // 16).astype(np.uint8)  # digits' 0..16 as everyday 0..255


#: A user's labelled Dataset (a list of (HW uint8 array, int) pairs) and unlabelled images.
REAL = [(_to_255(_train[i][0]), _train[i][1]) for i in range(100)]
POOL = [_to_255(_test[i][0]) for i in range(150)]
FAMILIES = ", ".join(synthaug.list_models())
GENERATOR_CLASSES = "[0, 1, 2, 3, 4, ...]"


def synthetic_images(ds: SyntheticDataset) -> np.ndarray:
    return np.stack([ds[i][0] for i in range(ds.num_real, len(ds))])


def run_dirs(root) -> list:
    fits = root / "fits"
    return sorted(p for p in fits.iterdir() if p.is_dir()) if fits.is_dir() else []


def mtimes(directory) -> dict[str, int]:
    return {name: (directory / name).stat().st_mtime_ns for name in (WEIGHTS_FILE, CHECKPOINT_FILE, "card.json")}


def weights(directory) -> dict[str, torch.Tensor]:
    return load_file(str(directory / WEIGHTS_FILE))


@pytest.fixture(scope="module")
def first_use(tmp_path_factory):
    """The one-liner on a fresh cache: fits with the unlabelled pool (progress on stderr)."""
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNTHAUG_CACHE", str(root))
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            # check_dose=False: these tests are about the cache; the check has tests of its own below
            ds = SyntheticDataset(REAL, generator=FAMILY, unlabeled=POOL, fit_steps=STEPS, check_dose=False)
        (directory,) = run_dirs(root)
        yield {"root": root, "ds": ds, "dir": directory, "stderr": stderr.getvalue(), "mtimes": mtimes(directory)}


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 20-step fit without unlabelled images: what the cache should hold."""
    out = tmp_path_factory.mktemp("straight") / "run"
    synthaug.fit(load_data(REAL), out=out, model=FAMILY, steps=STEPS, seed=0, progress=False)
    return out


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    root = tmp_path / "cache"
    monkeypatch.setenv("SYNTHAUG_CACHE", str(root))
    return root


def test_first_use_fits_on_the_labelled_and_unlabelled_images(first_use):
    card = Run(first_use["dir"]).card
    assert first_use["dir"].parent == first_use["root"] / "fits" and first_use["dir"].name.startswith(f"{FAMILY}-")
    assert (card.family, card.training["steps"]) == (FAMILY, STEPS)
    assert card.dataset["fingerprint"] == load_data(REAL).fingerprint()
    assert card.dataset["unlabeled_fingerprint"] == load_unlabeled(POOL, (1, 8, 8)).fingerprint()
    pseudo = card.training["pseudo_labels"]
    assert pseudo["pool"] == len(POOL) and pseudo["threshold"] == 0.9
    assert card.dataset["unlabeled_size"] == len(POOL) > pseudo["labelled"] > 0  # every image counted, some labelled
    assert f"fit {FAMILY}" in first_use["stderr"]  # fit's progress bar


def test_first_use_dataset_has_the_default_dose_in_the_real_format(first_use):
    ds = first_use["ds"]
    assert ds.num_real == len(REAL) and len(ds) == len(REAL) + round(DEFAULT_RATIO * len(REAL))
    items = [ds[i] for i in range(ds.num_real, len(ds))]
    assert all(isinstance(y, int) and 0 <= y < 10 for _, y in items)
    assert {y for _, y in items} == set(range(10))  # spread over the classes like the real ones
    assert all(isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.shape == (8, 8) for x, _ in items)


def test_second_use_reuses_the_cached_generator(first_use, monkeypatch, caplog):
    monkeypatch.setenv("SYNTHAUG_CACHE", str(first_use["root"]))
    with caplog.at_level(logging.INFO, logger="synthaug"):
        again = SyntheticDataset(REAL, generator=FAMILY, unlabeled=POOL, fit_steps=STEPS, progress=False,
                                 check_dose=False)
    assert run_dirs(first_use["root"]) == [first_use["dir"]]
    assert mtimes(first_use["dir"]) == first_use["mtimes"]  # nothing refitted or rewritten
    assert f"reusing the generator fitted on first use: {first_use['dir']}" in caplog.messages
    assert np.array_equal(synthetic_images(again), synthetic_images(first_use["ds"]))


@pytest.mark.parametrize("change", ["seed", "steps", "unlabeled", "no unlabeled", "pseudo_labels", "family",
                                    "data", "version"])
def test_other_data_or_settings_get_another_directory(first_use, monkeypatch, change):
    data = load_data(REAL)
    base = {"unlabeled_fingerprint": load_unlabeled(POOL, (1, 8, 8)).fingerprint(), "steps": STEPS, "seed": 0,
            "cache_dir": first_use["root"]}
    assert fit_directory(data, FAMILY, **base) == first_use["dir"]  # the key cached_sampler used
    family, other = FAMILY, dict(base)
    if change == "seed":
        other["seed"] = 1
    elif change == "steps":
        other["steps"] = STEPS + 1
    elif change == "unlabeled":
        other["unlabeled_fingerprint"] = load_unlabeled(POOL[:-1], (1, 8, 8)).fingerprint()
    elif change == "no unlabeled":
        other["unlabeled_fingerprint"] = None
    elif change == "pseudo_labels":
        other["pseudo_labels"] = 0.5
    elif change == "family":
        family = "dcgan"
    elif change == "data":
        data = load_data(REAL[:-1])
    else:
        monkeypatch.setattr(cache, "__version__", "0.0.0-other")
    moved = fit_directory(data, family, **other)
    assert moved != first_use["dir"] and moved.parent == first_use["dir"].parent


def test_pseudo_label_threshold_does_not_split_fits_without_unlabelled_images():
    data = load_data(REAL)
    assert fit_directory(data, FAMILY, pseudo_labels=0.5, cache_dir="/c") == fit_directory(data, FAMILY, cache_dir="/c")


@pytest.mark.parametrize("env,expected", [
    ({"SYNTHAUG_CACHE": "{tmp}/mine", "XDG_CACHE_HOME": "{tmp}/xdg"}, "{tmp}/mine"),
    ({"SYNTHAUG_CACHE": "", "XDG_CACHE_HOME": "{tmp}/xdg"}, "{tmp}/xdg/synthaug"),
    ({"SYNTHAUG_CACHE": None, "XDG_CACHE_HOME": None}, "{tmp}/home/.cache/synthaug"),
])
def test_cache_root_comes_from_the_environment(monkeypatch, tmp_path, env, expected):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value.format(tmp=tmp_path))
    assert str(cache_root()) == expected.format(tmp=tmp_path)
    assert cache_root(tmp_path / "given") == tmp_path / "given"  # cache_dir= wins over all


def _simulate_killed_fit(directory):
    """A run stopped after its step-10 checkpoint: card, weights and checkpoint say step 10."""
    synthaug.fit(load_data(REAL), out=directory, model=FAMILY, steps=STEPS // 2, seed=0, progress=False)
    assert Run(directory).card.training["steps"] == STEPS // 2


def test_a_killed_fit_is_continued_from_its_checkpoint(fresh_cache, straight, caplog):
    directory = fit_directory(load_data(REAL), FAMILY, steps=STEPS)
    _simulate_killed_fit(directory)
    killed_log = Run(directory).log()
    with caplog.at_level(logging.INFO, logger="synthaug"):
        SyntheticDataset(REAL, FAMILY, fit_steps=STEPS, progress=False, check_dose=False)
    assert Run(directory).log()[:STEPS // 2] == killed_log  # its first steps were kept, not trained again
    assert f"continuing the generator fit that stopped at step {STEPS // 2} of {STEPS}: {directory}" in caplog.messages
    assert run_dirs(fresh_cache) == [directory]
    assert Run(directory).card.training["steps"] == STEPS and len(Run(directory).log()) == STEPS
    resumed, uninterrupted = weights(directory), weights(straight)
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed)  # resume is exact on CPU


@pytest.mark.parametrize("damage", ["unreadable checkpoint", "killed before the first checkpoint"])
def test_a_fit_that_cannot_be_continued_is_fitted_again(fresh_cache, straight, caplog, damage):
    directory = fit_directory(load_data(REAL), FAMILY, steps=STEPS)
    if damage == "unreadable checkpoint":
        _simulate_killed_fit(directory)
        (directory / CHECKPOINT_FILE).write_bytes(b"torn")
    else:  # only the log of the first steps made it to disk
        directory.mkdir(parents=True)
        (directory / LOG_FILE).write_text("step,epoch,time_s,loss_d,loss_g\n1,0,0.01,1.0,1.0\n")
    with caplog.at_level(logging.INFO, logger="synthaug"):
        SyntheticDataset(REAL, FAMILY, fit_steps=STEPS, progress=False, check_dose=False)
    if damage == "unreadable checkpoint":
        assert any(m.startswith(f"cannot continue the unfinished fit in {directory}") for m in caplog.messages)
    assert f"fitting a {FAMILY} generator on first use ({STEPS} steps), cached in {directory}" in caplog.messages
    assert Run(directory).card.training["steps"] == STEPS and len(Run(directory).log()) == STEPS
    refitted, uninterrupted = weights(directory), weights(straight)
    assert all(torch.equal(refitted[k], uninterrupted[k]) for k in uninterrupted)


def test_processes_asking_at_once_fit_once(tmp_path, caplog):
    """DDP ranks build the same dataset at the same moment: one fits, the others wait and reuse."""
    results, errors = [], []

    def ask():
        try:
            results.append(cached_sampler(REAL, FAMILY, steps=STEPS, cache_dir=tmp_path, progress=False))
        except BaseException as err:  # surfaced below
            errors.append(err)

    with caplog.at_level(logging.INFO, logger="synthaug"):
        threads = [threading.Thread(target=ask) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and len(results) == 3
    assert sum(m.startswith("fitting a") for m in caplog.messages) == 1
    assert sum(m.startswith("reusing the generator") for m in caplog.messages) == 2
    assert len(run_dirs(tmp_path)) == 1


@pytest.mark.parametrize("how", ["run dir", "Path", "safetensors", "sampler=", "sampler= path"])
def test_generator_takes_a_path_or_a_sampler_and_sampler_stays_its_old_name(first_use, fresh_cache, how):
    directory = first_use["dir"]
    given = {"run dir": {"generator": str(directory)}, "Path": {"generator": directory},
             "safetensors": {"generator": str(directory / WEIGHTS_FILE)},
             "sampler=": {"sampler": Run(directory).sampler()}, "sampler= path": {"sampler": str(directory)}}[how]
    ds = SyntheticDataset(REAL, **given)
    assert np.array_equal(synthetic_images(ds), synthetic_images(first_use["ds"]))
    assert run_dirs(fresh_cache) == []  # a ready generator fits nothing


def test_an_existing_path_wins_over_a_family_of_the_same_name(first_use, fresh_cache, tmp_path, monkeypatch):
    shutil.copytree(first_use["dir"], tmp_path / FAMILY)
    monkeypatch.chdir(tmp_path)
    ds = SyntheticDataset(REAL, FAMILY)
    assert np.array_equal(synthetic_images(ds), synthetic_images(first_use["ds"]))
    assert run_dirs(fresh_cache) == []


@pytest.fixture(scope="module")
def ready(first_use):
    return Run(first_use["dir"]).sampler()


@pytest.mark.parametrize("args,kwargs,message", [
    ("ready", {"sampler": "ready"}, "expected exactly one of generator= and its old name sampler=, got both"),
    (None, {}, "expected exactly one of generator= and its old name sampler=, got neither"),
    ("ready", {"unlabeled": POOL}, "unlabeled: applies only to a generator fitted on first use, expected "
     f"generator=<family name> ({FAMILIES}), got a ready TorchSampler"),
    ("missing/run", {"fit_steps": 5, "cache_dir": "c"}, "fit_steps, cache_dir: apply only to a generator fitted on "
     f"first use, expected generator=<family name> ({FAMILIES}), got the path 'missing/run'"),
    ("dcgann", {}, f"generator: expected a registered family ({FAMILIES}) or an existing run directory, "
     ".safetensors or .onnx file, got 'dcgann'"),
    (42, {}, "generator: expected a Sampler, a path to a run directory, .safetensors or .onnx file, or a family "
     "name, got int"),
    (FAMILY, {"fit_steps": 0}, "fit_steps: expected a positive integer, got 0"),
    (FAMILY, {"unlabeled": []}, "expected a non-empty dataset, got 0 items"),
])
def test_bad_generator_arguments_are_one_line(ready, fresh_cache, args, kwargs, message):
    kwargs = {k: ready if v == "ready" else v for k, v in kwargs.items()}
    positional = () if args is None else (ready if args == "ready" else args,)
    with pytest.raises(SynthaugError) as err:
        SyntheticDataset(REAL, *positional, progress=False, **kwargs)
    assert str(err.value) == message
    assert run_dirs(fresh_cache) == []  # refused before anything was fitted


@pytest.mark.parametrize("kwargs,message", [
    ({"balance": True, "classes": ["cat"]},
     f"classes: expected a class name or index 0..9 of the generator's classes {GENERATOR_CLASSES}, got 'cat'"),
    ({"balance": True, "classes": [10]},
     f"classes: expected a class name or index 0..9 of the generator's classes {GENERATOR_CLASSES}, got 10"),
    ({"per_class": {"cat": 2}},
     f"per_class: expected a class name or index 0..9 of the generator's classes {GENERATOR_CLASSES}, got 'cat'"),
    ({"balance": True, "labels": [12] * len(REAL)},
     f"the real dataset has label 12, outside the generator's classes 0..9 {GENERATOR_CLASSES}"),
    ({"balance": True, "labels": ["cat"] * len(REAL)},
     f"the real dataset has label 'cat': expected integer class indices 0..9 of the generator's classes "
     f"{GENERATOR_CLASSES}"),
    ({"balance": True, "labels": [0.5] * len(REAL)},
     f"the real dataset has label 0.5: expected integer class indices 0..9 of the generator's classes "
     f"{GENERATOR_CLASSES}"),
])
def test_classes_the_generator_does_not_know_are_one_line(ready, kwargs, message):
    with pytest.raises(SynthaugError) as err:
        SyntheticDataset(REAL, ready, **kwargs)
    assert str(err.value) == message


def test_classes_may_be_numpy_integers_or_names(ready):
    counts = np.bincount([y for _, y in REAL], minlength=10)
    expected = [int(counts.max() - counts[c]) if c in (3, 7) else 0 for c in range(10)]
    by_index = SyntheticDataset(REAL, ready, balance=True, classes=[np.int64(3), 7])
    by_name = SyntheticDataset(REAL, ready, balance=True, classes=["3", "7"])
    assert by_index.synthetic_counts.tolist() == by_name.synthetic_counts.tolist() == expected


@pytest.mark.parametrize("when", ["after the fit finished", "after a killed fit"])
def test_damaged_cached_weights_are_refitted_not_failed_on_forever(fresh_cache, straight, caplog, when):
    directory = fit_directory(load_data(REAL), FAMILY, steps=STEPS)
    if when == "after the fit finished":
        cached_sampler(REAL, FAMILY, steps=STEPS, progress=False)
    else:
        _simulate_killed_fit(directory)
    with open(directory / WEIGHTS_FILE, "r+b") as fh:
        fh.truncate(100)
    with caplog.at_level(logging.INFO, logger="synthaug"):
        sampler = cached_sampler(REAL, FAMILY, steps=STEPS, progress=False)
    if when == "after the fit finished":
        assert any(m.startswith(f"the cached generator in {directory} cannot be loaded") and
                   m.endswith("fitting it again from scratch") for m in caplog.messages), caplog.messages
    else:  # continuing the fit writes the weights anew: resume is exact, so nothing is lost
        assert f"continuing the unfinished generator fit (step unknown of {STEPS}): {directory}" in caplog.messages
    assert sampler.sample([0, 1], seed=0).shape == (2, 1, 8, 8)
    refitted, uninterrupted = weights(directory), weights(straight)
    assert all(torch.equal(refitted[k], uninterrupted[k]) for k in uninterrupted)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="synthaug"):
        cached_sampler(REAL, FAMILY, steps=STEPS, progress=False)  # healed: found, not fitted again
    assert any(m.startswith("reusing the generator") for m in caplog.messages)


def test_a_refit_never_deletes_a_file_fit_does_not_write(fresh_cache, caplog):
    directory = fit_directory(load_data(REAL), FAMILY, steps=STEPS)
    cached_sampler(REAL, FAMILY, steps=STEPS, progress=False)
    (directory / WEIGHTS_FILE).write_bytes(b"torn")
    (directory / "notes.txt").write_text("mine")
    with pytest.raises(SynthaugError, match=r"holds files fit does not write \(notes.txt\)"):
        cached_sampler(REAL, FAMILY, steps=STEPS, progress=False)
    assert (directory / "notes.txt").read_text() == "mine"


def test_the_cache_lock_file_is_shareable_and_waiting_has_an_end(tmp_path, monkeypatch):
    import fcntl
    import os

    directory = tmp_path / "fits" / "gan-0123"
    monkeypatch.setattr(os, "umask", os.umask)  # restored below whatever happens
    old = os.umask(0o077)
    try:
        with cache._exclusive(directory):
            pass
    finally:
        os.umask(old)
    lock = tmp_path / "fits" / ".gan-0123.lock"
    assert lock.stat().st_mode & 0o777 == 0o666  # another user can open it, whatever our umask
    fd = os.open(lock, os.O_RDONLY)  # a holder: flock locks open files, even within one process
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(SynthaugError, match=r"another process has been fitting .*gan-0123 for over 0.5 s"):
            with cache._exclusive(directory, wait_s=0.5):
                pass
    finally:
        os.close(fd)
    with cache._exclusive(directory, wait_s=0.5):  # free again
        pass


# --------------------------------------------------------------------------- the recipe checks itself


class OracleSampler(synthaug.Sampler):
    """A "generator" that returns unseen real digits of the asked class (digits:test): samples
    that surely help a classifier trained on three images per class."""

    def __init__(self) -> None:
        self.pool = load_data("digits:test")
        self.card = synthaug.fit("digits:train", out=_oracle_dir(), model="gan", steps=1, progress=False).card
        self.device = torch.device("cpu")

    def _generate(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images = self.pool.as_float()
        out = []
        for u, c in zip(noise.reshape(len(noise), -1)[:, 0], labels):
            members = torch.nonzero(self.pool.labels == c).flatten()
            out.append(images[members[int(u.abs() * 1e6) % len(members)]])
        return torch.stack(out) if out else torch.empty(0, 1, 8, 8)


def _oracle_dir():
    import tempfile

    return tempfile.mkdtemp() + "/oracle"


def test_the_check_keeps_synthetic_items_that_help_and_says_so(tmp_path):
    from synthaug.augment.dose_check import check_dose, describe

    few = _train.subset(per_class_subset(_train.labels, [3] * 10, 0))
    record = check_dose(few, OracleSampler(), torch.full((10,), 6), steps=150, cache_dir=tmp_path, name="oracle")
    assert record["use"] and record["gain"]["mean"] > 0.05, record["gain"]
    assert record["synthetic_items"] == 60 and record["dose"] == pytest.approx(60 / 90)
    assert describe(record).startswith("SyntheticDataset: 60 synthetic items checked: +")
    (cached,) = tmp_path.glob("oracle-*.json")
    assert check_dose(few, OracleSampler(), torch.full((10,), 6), steps=150, cache_dir=tmp_path,
                      name="oracle") == record  # read back, not measured again


@pytest.fixture
def short_checks(monkeypatch):
    """The recipe's check with 100 classifier steps instead of 400: what is tested here is what
    the dataset does with the check's verdict, not the verdict (see the oracle test above)."""
    from synthaug.augment import dose_check

    monkeypatch.setattr(dose_check, "CHECK_STEPS", 100)


def test_first_use_drops_synthetic_items_that_did_not_help_and_says_why(fresh_cache, short_checks, caplog):
    with caplog.at_level(logging.INFO, logger="synthaug"):
        ds = SyntheticDataset(REAL, FAMILY, fit_steps=2, balance=False, progress=False)  # a 2-step generator
    record = ds.dose_check
    assert record is not None and record["seeds"] == 3 and record["metric"] == "balanced_accuracy"
    assert record["steps"] == 100
    line = [m for m in caplog.messages if m.startswith("SyntheticDataset:")]
    assert len(line) == 1
    if record["use"]:  # possible by chance with three seeds; then the items are kept and said so
        assert ds.num_synthetic == round(DEFAULT_RATIO * len(REAL)) and "checked" in line[0]
    else:
        assert ds.num_synthetic == 0 and len(ds) == len(REAL)
        assert "using no synthetic items" in line[0] and "pass check_dose=False" in line[0]
    assert list((fresh_cache / "checks").glob("*.json"))  # cached with the generator
    unchecked = SyntheticDataset(REAL, FAMILY, fit_steps=2, progress=False, check_dose=False)
    assert unchecked.dose_check is None and unchecked.num_synthetic == round(DEFAULT_RATIO * len(REAL))


def test_the_check_needs_two_images_per_class(fresh_cache):
    data = load_data(REAL)
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[torch.nonzero(data.labels == 4).flatten()[1:]] = False  # class 4 keeps one image
    with pytest.raises(SynthaugError, match=r"check_dose: class '4' has 1 image\(s\): the validation split needs at "
                                            r"least 2 per class"):
        SyntheticDataset(data.subset(keep.nonzero().flatten()), FAMILY, fit_steps=2, progress=False)


def test_balance_is_checked_against_class_balanced_resampling(fresh_cache, short_checks, caplog):
    from synthaug.augment.dose_check import describe

    data = load_data(REAL)
    keep = torch.cat([torch.nonzero(data.labels == c).flatten()[:(12 if c < 5 else 3)] for c in range(10)])
    with caplog.at_level(logging.INFO, logger="synthaug"):
        ds = SyntheticDataset(data.subset(keep), FAMILY, fit_steps=2, balance=True, progress=False)
    record = ds.dose_check
    assert "resampling_gain" in record and "over_resampling" in record
    assert record["use"] == (record["gain"]["mean"] > 0 and record["over_resampling"]["mean"] > 0)
    assert ds.num_synthetic == (int(record["synthetic_items"]) if record["use"] else 0)
    assert ds.num_repeated == (int(record["synthetic_items"]) if fill(record) == "real" else 0)
    weights = ds.class_balanced_weights()
    labels = torch.tensor([ds[i][1] for i in range(len(ds))])
    assert torch.allclose(torch.bincount(labels, weights=weights.double()), torch.ones(10, dtype=torch.float64))
    iv = lambda m: {"mean": m, "ci95": 0.01, "low": m - 0.01, "high": m + 0.01}  # noqa: E731
    line = describe({**record, "use": False, "gain": iv(0.2), "resampling_gain": iv(0.3), "over_resampling": iv(-0.1)})
    n = record["synthetic_items"]
    assert line.startswith(f"SyntheticDataset: balancing the classes with {n} repeated real images instead of "
                           "synthetic ones: class-balanced resampling did better (+30.0")
    line = describe({**record, "use": False, "gain": iv(0.2), "resampling_gain": iv(-0.1), "over_resampling": iv(0.3)})
    assert line.startswith(f"SyntheticDataset: using no synthetic items: the {n} asked for changed a classifier by +20.0")


def test_where_resampling_won_the_check_balance_repeats_real_images(fresh_cache, caplog):
    """A check record that found class-balanced resampling better than real images alone and
    than the synthetic top-up (planted in the check cache, where the check would write it): the
    dataset fills the rare classes with real images of those classes, each repeated equally."""
    from synthaug.augment import dose_check
    from synthaug.train.cache import CHECKS_FOLDER, cached_fit
    from synthaug.data.allocation import synthetic_counts

    small = _train.subset(per_class_subset(_train.labels, [12] * 5 + [3] * 5, 0))
    real = [(_to_255(small[i][0]), small[i][1]) for i in range(len(small))]
    fitted = cached_fit(real, FAMILY, steps=2, progress=False)
    counts = synthetic_counts(torch.tensor(fitted.data.class_counts()), None, None, None, True, fitted.data.class_names)
    assert counts.tolist() == [0] * 5 + [9] * 5
    key = dose_check._key(fitted.data, counts, dose_check.CHECK_SEEDS, dose_check.CHECK_STEPS, True)
    iv = lambda m: {"mean": m, "ci95": 0.01, "low": m - 0.01, "high": m + 0.01}  # noqa: E731
    record = {"format": dose_check._FORMAT, "key": key, "use": False, "gain": iv(0.05), "resampling_gain": iv(0.2),
              "over_resampling": iv(-0.15), "dose": 45 / 120, "synthetic_items": 45, "real_items": 75,
              "seeds": 3, "steps": dose_check.CHECK_STEPS, "val_fraction": 0.2, "metric": "balanced_accuracy"}
    checks = fresh_cache / CHECKS_FOLDER
    checks.mkdir(parents=True)
    (checks / f"{fitted.directory.name}-{key}.json").write_text(json.dumps(record))
    with caplog.at_level(logging.INFO, logger="synthaug"):
        ds = SyntheticDataset(real, FAMILY, fit_steps=2, balance=True, progress=False, return_is_synthetic=True)
    assert ds.dose_check == record  # read from the cache, not measured
    assert (ds.num_synthetic, ds.num_repeated, len(ds)) == (0, 45, 75 + 45)
    assert [m for m in caplog.messages if m.startswith("SyntheticDataset:")] == [dose_check.describe(record)]
    items = [ds[i] for i in range(len(ds))]
    assert not any(item[2] for item in items)  # no synthetic item
    assert torch.bincount(torch.tensor([item[1] for item in items]), minlength=10).tolist() == [12] * 10
    for i in range(75, 120):  # a real image of its class, each of a class's 3 repeated 3 times
        source = int(ds.repeated_real[i - 75])
        assert np.array_equal(items[i][0], real[source][0]) and items[i][1] == real[source][1] >= 5
    rare = [i for i, (_, label) in enumerate(real) if label >= 5]
    assert torch.bincount(ds.repeated_real, minlength=75)[rare].tolist() == [3] * 15
    again = SyntheticDataset(real, FAMILY, fit_steps=2, balance=True, progress=False)
    assert torch.equal(again.repeated_real, ds.repeated_real)  # the same seed repeats the same items
