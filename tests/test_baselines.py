"""The practitioner's baselines (``synthaug.metrics.methods``) and their place in ``synthaug eval``:
class-balanced resampling, logit adjustment, pseudo-labels and FixMatch train what they claim;
eval runs the ones that apply beside the synthetic arms and with synthetic samples on top, and
names the best arm; the ones that do not apply are skipped with the reason in the report."""

from __future__ import annotations

import json

import pytest
import torch

import synthaug
from synthaug.augment.mix import SyntheticMix
from synthaug.data import load_data, per_class_subset
from synthaug.errors import SynthaugError
from synthaug.evaluation import evaluate
from synthaug.evaluation.methods import applicable_baselines, balance_dose, recommend_method
from synthaug.metrics.classifier import fit_steps, predict
from synthaug.metrics.methods import Method, _balanced_batches, confident_labels, train_method
from synthaug.metrics.views import ClassicalAugment, StrongView
from conftest import expect_error, run_cli, snapshot

TRAIN = load_data("digits:train")
TEST = load_data("digits:test")


def long_tail(rare: int = 6, seed: int = 0):
    """digits:train with classes 5-9 cut to ``rare`` images each (the held-out case of issue 18)."""
    counts = [n if c < 5 else rare for c, n in enumerate(TRAIN.class_counts())]
    return TRAIN.subset(per_class_subset(TRAIN.labels, counts, seed))


def same_weights(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_real_method_is_exactly_fit_steps_with_classical_augmentation():
    x, y = TRAIN.as_float()[:120], TRAIN.labels[:120]
    reference = fit_steps(x, y, 10, 12, seed=4, batch_hook=ClassicalAugment(seed=4))
    assert same_weights(train_method(x, y, 10, Method(), steps=12, seed=4), reference)
    assert not same_weights(train_method(x, y, 10, Method(), steps=12, seed=5), reference)


def test_balanced_sampling_draws_every_class_alike():
    labels = long_tail().labels
    counts = torch.bincount(labels, minlength=10).double()
    draws = torch.cat([next(_balanced_batches(labels, counts, 64, torch.Generator().manual_seed(s)))
                       for s in range(60)])
    share = torch.bincount(labels[draws], minlength=10).double() / len(draws)
    assert share.min() > 0.07 and share.max() < 0.13  # 0.1 each, not 6/900 for the rare classes


@pytest.mark.parametrize("method", [Method(sampling="balanced"), Method(loss="logit_adjusted")],
                         ids=["resample", "logit_adjust"])
def test_rebalancing_lifts_the_rare_classes_over_plain_training(method):
    data = long_tail(rare=4)
    rare = TEST.labels >= 5
    scores = []
    for m in (Method(), method):
        preds = predict(train_method(data.as_float(), data.labels, 10, m, steps=150, seed=0), TEST.as_float())
        scores.append((preds[rare] == TEST.labels[rare]).float().mean().item())
    assert scores[1] > scores[0] + 0.05, scores


def test_pseudo_labels_and_fixmatch_learn_from_the_unlabelled_pool():
    few = TRAIN.subset(per_class_subset(TRAIN.labels, [3] * 10, 0))
    pool = TEST.as_float()
    teacher = train_method(few.as_float(), few.labels, 10, steps=100, seed=0)
    found = confident_labels(teacher, pool, 0.95)
    assert 0 < len(found.indices) < len(pool)
    assert (found.labels == TEST.labels[found.indices]).float().mean() > 0.8  # mostly right
    base = (predict(teacher, pool) == TEST.labels).float().mean().item()
    fix = train_method(few.as_float(), few.labels, 10, Method(unlabeled="fixmatch"), steps=100, seed=0,
                       unlabeled=pool, mu=2)
    assert not same_weights(fix, teacher)
    assert (predict(fix, pool) == TEST.labels).float().mean().item() > base - 0.05  # not broken by the pool
    with pytest.raises(SynthaugError, match="method fixmatch: expected unlabelled images, got none"):
        train_method(few.as_float(), few.labels, 10, Method(unlabeled="fixmatch"), steps=1)


class _OracleSampler(synthaug.Sampler):
    """Real test digits of the asked class as "synthetic" images (noise picks which)."""

    def __init__(self, card) -> None:
        self.card, self.device, self.pool = card, torch.device("cpu"), TEST.as_float()

    def _generate(self, noise, labels):
        pick = [torch.nonzero(TEST.labels == c).flatten() for c in labels.tolist()]
        return torch.stack([self.pool[p[int(u.abs() * 1e6) % len(p)]]
                            for p, u in zip(pick, noise.reshape(len(noise), -1)[:, 0])])


def test_fixmatch_takes_synthetic_images_as_unlabelled_rows(tmp_path):
    few = TRAIN.subset(per_class_subset(TRAIN.labels, [3] * 10, 0))
    pool = TRAIN.as_float()[1000:1100]
    card = synthaug.fit("digits:train", out=tmp_path / "card", model="gan", steps=1, progress=False).card
    seen = []

    def hook(images, labels):
        out = SyntheticMix(_OracleSampler(card), p=0.5, labels="balanced", seed=0)(images, labels)
        seen.append((len(images), (out[0] != images).flatten(1).any(1).sum().item()))
        return out

    args = (few.as_float(), few.labels, 10, Method(unlabeled="fixmatch"))
    plain = train_method(*args, steps=5, seed=0, unlabeled=pool, mu=2)
    mixed = train_method(*args, steps=5, seed=0, unlabeled=pool, mu=2, synthetic_unlabeled=hook)
    assert len(seen) == 5 and all(n == 2 * 30 and 0 < replaced <= 30 for n, replaced in seen), seen
    assert not same_weights(plain, mixed)
    none = train_method(*args, steps=5, seed=0, unlabeled=pool, mu=2,
                        synthetic_unlabeled=SyntheticMix(_OracleSampler(card), p=0.0, labels="balanced"))
    assert same_weights(plain, none)  # a zero share leaves FixMatch exactly as it was
    with pytest.raises(SynthaugError, match="synthetic_unlabeled: only for the fixmatch method, got resample"):
        train_method(few.as_float(), few.labels, 10, Method(sampling="balanced"), steps=1, synthetic_unlabeled=hook)


def test_strong_view_is_seeded_in_range_and_stronger_than_the_weak_one():
    x = TEST.as_float()[:64]
    strong, _ = StrongView(seed=1)(x, None)
    weak, _ = ClassicalAugment(seed=1)(x, None)
    assert torch.equal(StrongView(seed=1)(x, None)[0], strong) and strong.min() >= 0 and strong.max() <= 1
    assert (strong - x).abs().mean() > (weak - x).abs().mean()


@pytest.mark.parametrize("field,value", [("sampling", "oversample"), ("loss", "focal"), ("unlabeled", "mixmatch")])
def test_unknown_method_parts_are_one_line(field, value):
    with pytest.raises(SynthaugError, match=f"method {field}: expected one of"):
        Method(**{field: value})


def test_which_baselines_apply_and_why_the_others_do_not():
    methods, skipped = applicable_baselines(TRAIN, None)
    assert methods == [] and set(skipped) == {"resample", "logit_adjust", "balance", "pseudo_label", "fixmatch"}
    assert "the labels are balanced" in skipped["resample"]
    methods, skipped = applicable_baselines(long_tail(), TEST.as_float())
    assert [m.name for m in methods] == ["resample", "logit_adjust", "pseudo_label", "fixmatch"] and skipped == {}
    data = long_tail()
    dose, weights = balance_dose(data)
    counts = data.class_counts()
    assert dose == pytest.approx(sum(max(counts) - n for n in counts) / (10 * max(counts)))
    assert weights[counts.index(max(counts))] == 0.0 and min(weights[5:]) > 0.19 and sum(weights) == pytest.approx(1)


def test_the_recommendation_names_a_baseline_unless_synthetic_rows_beat_it_with_an_interval_above_zero():
    iv = lambda *v: {"mean": sum(v) / len(v), "values": list(v)}  # noqa: E731
    arms = [{"name": "real", "label": "real images", "dose": 0.0, "m": iv(0.80, 0.81, 0.79)},
            {"name": "balance", "label": "synthaug balance=True", "dose": 0.3, "m": iv(0.75, 0.76, 0.74)},
            {"name": "logit_adjust", "label": "logit-adjusted loss", "dose": 0.0, "m": iv(0.86, 0.87, 0.85)},
            {"name": "logit_adjust+synthetic@0.1", "label": "logit-adjusted loss + synthetic samples (dose 0.1)",
             "dose": 0.1, "m": iv(0.87, 0.85, 0.86)}]
    verdict = recommend_method(arms, "m")
    assert verdict["best"] == "logit_adjust" and verdict["dose"] is None and not verdict["synthetic_helps"]
    assert verdict["text"].startswith("use logit-adjusted loss without synthetic samples: +6.0 ± 0.0 points")
    assert "synthetic samples on top: +0.0 ± 4.3 points (logit_adjust+synthetic@0.1)" in \
        verdict["text"]
    arms[1]["m"] = iv(0.95, 0.94, 0.93)  # higher mean on every seed: an interval above zero
    arms[3]["m"] = iv(0.88, 0.88, 0.87)
    verdict = recommend_method(arms, "m")
    assert verdict["best"] == "balance" and verdict["dose"] == 0.3 and verdict["baseline"] == "logit_adjust"
    assert "over logit-adjusted loss alone: +8.0 ± 2.5 points" in verdict["text"]


@pytest.fixture(scope="module")
def long_tail_report(digits_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("lt") / "report"
    pool = TEST.as_float()[:150]
    report = evaluate(digits_run.path, long_tail(), "digits:test", unlabeled=pool, seeds=2, doses=[0, 0.5],
                      steps=12, reference_steps=20, progress=False, out=out, fixmatch_mu=1)
    return report, out


def test_eval_runs_every_applicable_baseline_alone_and_with_synthetic_samples(long_tail_report):
    report, out = long_tail_report
    methods = report["methods"]
    names = [arm["name"] for arm in methods["arms"]]
    assert names == ["real", "synthetic@0.5", "balance", "resample", "resample+synthetic@0.5", "logit_adjust",
                     "logit_adjust+synthetic@0.5", "pseudo_label", "pseudo_label+synthetic@0.5", "fixmatch",
                     "fixmatch+synthetic@0.5"]
    assert methods["metric"] == "balanced_accuracy" and methods["rare_classes"] == ["5", "6", "7", "8", "9"]
    gain_arms = {arm["dose"]: arm for arm in report["gain"]["fractions"][0]["arms"]}
    by_name = {arm["name"]: arm for arm in methods["arms"]}
    # paired with the gain experiment: the same per-seed scores, not a second run
    assert by_name["real"]["accuracy"]["values"] == gain_arms[0.0]["accuracy"]["values"]
    assert by_name["synthetic@0.5"]["accuracy"]["values"] == gain_arms[0.5]["accuracy"]["values"]
    over = by_name["resample+synthetic@0.5"]["over_baseline"]["balanced_accuracy"]
    manual = [a - b for a, b in zip(by_name["resample+synthetic@0.5"]["balanced_accuracy"]["values"],
                                    by_name["resample"]["balanced_accuracy"]["values"])]
    assert over["values"] == pytest.approx(manual)
    baseline = max((a for a in methods["arms"] if a["dose"] == 0), key=lambda a: a["balanced_accuracy"]["mean"])
    assert methods["recommendation"]["baseline"] == baseline["name"] and report.recommendation.startswith("use ")
    assert report.method in (baseline["name"], *[a["name"] for a in methods["arms"] if a["dose"] > 0])
    saved = json.loads((out / "report.json").read_text())
    assert [a["name"] for a in saved["methods"]["arms"]] == names
    md = (out / "report.md").read_text()
    assert "The practitioner's baselines, alone and with synthetic samples" in md
    assert "| class-balanced resampling + synthetic samples (dose 0.5) |" in md
    assert "baselines, alone and with synthetic samples" in (out / "report.html").read_text()


def test_eval_on_balanced_data_without_unlabeled_skips_the_baselines_and_says_why(digits_run, tmp_path, capsys):
    rc, out, err = run_cli(capsys, "eval", digits_run.path, "--data", "digits:train", "--test", "digits:test",
                           "--out", tmp_path / "r", "--seeds", "2", "--doses", "0,0.5", "--steps", "5",
                           "--reference-steps", "10", "--no-progress")
    assert rc == 0, err
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert "arms" not in report["methods"] and report["recommendation"]["method"] is None
    assert "the labels are balanced" in report["methods"]["skipped"]["resample"]
    assert "no unlabelled images" in report["methods"]["skipped"]["fixmatch"]
    assert "Baselines not run" in (tmp_path / "r" / "report.md").read_text()


def test_eval_refuses_a_class_without_training_images_naming_it(digits_run, tmp_path, capsys):
    import numpy as np

    images = TRAIN.images[:, 0].numpy()
    keep = (TRAIN.labels != 7).numpy()
    np.savez(tmp_path / "no7.npz", images=images[keep], labels=TRAIN.labels.numpy()[keep],
             class_names=np.array([str(i) for i in range(10)]), pixel_max=np.array(16))
    before = snapshot(tmp_path)
    expect_error(capsys, "eval", [digits_run.path, "--data", tmp_path / "no7.npz", "--test", "digits:test",
                                  "--out", tmp_path / "r", "--no-progress"], "class '7' has 0 training image(s)")
    assert snapshot(tmp_path) == before
