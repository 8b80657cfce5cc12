"""Unlabelled images in the vae (semi-supervised M2) and pixelrnn ("no label" embedding) families."""

from __future__ import annotations

import math
import re

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from conftest import TINY
from synthaug.card import METADATA_KEY
from synthaug.errors import SynthaugError
from synthaug.models import create_model
from synthaug.weights import load_generator

#: Per family: the trainer's parameters that only unlabelled images (or label dropout) train.
NEW_PREFIX = {"vae": "classifier.", "pixelrnn": "no_label."}
UNLABELED_KEY = {"vae": "unlabeled_elbo", "pixelrnn": "unlabeled_bits_per_dim"}

#: The tiny generators' state dicts (1x8x8, 3 classes) as written before unlabelled support.
OLD_GENERATOR_STATE = {
    "vae": [("embed.weight", (3, 4)), ("project.weight", (256, 12)), ("project.bias", (256,)),
            ("net.1.weight", (16, 8, 4, 4)), ("net.1.bias", (8,)), ("net.3.weight", (1, 8, 3, 3)),
            ("net.3.bias", (1,))],
    "pixelrnn": [("w0", (8, 1, 2, 3)), ("b0", (8,)), ("embed_in.weight", (3, 8)), ("rnn.0.w_in", (32, 8, 3)),
                 ("rnn.0.w_ss", (32, 8, 3)), ("rnn.0.bias", (32,)), ("rnn.0.embed.weight", (3, 32)),
                 ("out1.weight", (8, 8)), ("out1.bias", (8,)), ("out2.weight", (8, 8)), ("out2.bias", (8,))],
}


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: on a busy machine torch's threads only contend with each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_trainer(family: str, seed: int = 0, num_classes: int = 3, **overrides):
    torch.manual_seed(seed)
    return create_model(family, {**TINY[family]["config"], **overrides}, (1, 8, 8), num_classes)


def batch(seed: int = 1, n: int = 6, num_classes: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.arange(n) % num_classes, torch.rand(n, 1, 8, 8, generator=g)


def new_params(trainer, family):
    return {k: v.detach().clone() for k, v in trainer.named_parameters() if k.startswith(NEW_PREFIX[family])}


def old_params(trainer, family):
    return {k: v.detach().clone() for k, v in trainer.named_parameters()
            if not k.startswith((NEW_PREFIX[family], "ema."))}


def vae_reference_steps(trainer, images, labels, rng, steps):
    """The labelled-only VAE step as it was before M2: Adam over encoder, decoder and sigma."""
    cfg = trainer.config
    params = [*trainer.encoder.parameters(), *trainer.generator.parameters(), trainer.log_sigma]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas))
    for step in range(steps):
        eps = torch.randn(images.shape[0], cfg.latent_dim, generator=rng)
        mean, log_var = trainer.encoder(images, labels)
        z = mean + eps * torch.exp(0.5 * log_var)
        mu = torch.sigmoid(trainer.generator.logits(z, labels))
        nll = (0.5 * ((images - mu) * torch.exp(-trainer.log_sigma)) ** 2 + trainer.log_sigma
               + 0.5 * math.log(2 * math.pi))
        recon = nll.flatten(1).sum(1).mean()
        kl = 0.5 * (mean.pow(2) + log_var.exp() - 1.0 - log_var).sum(1).mean()
        loss = recon + trainer.kl_weight(step) * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def pixelrnn_reference_steps(trainer, images, labels, rng, steps):
    """The labelled-only PixelRNN step as it was before: dropout masks from rng, clipped Adam."""
    g, cfg = trainer.generator.train(), trainer.config
    opt = torch.optim.Adam(g.parameters(), lr=cfg.lr)

    def dropout(x):
        return x * (torch.rand(x.shape, generator=rng) >= cfg.dropout) / (1 - cfg.dropout)

    for _ in range(steps):
        target = g.quantise(images)
        logits = g.logits(target.float() / (g.levels - 1), labels, dropout)
        loss = F.cross_entropy(logits.transpose(1, 2), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(g.parameters(), cfg.grad_clip)
        opt.step()


REFERENCE = {"vae": vae_reference_steps, "pixelrnn": pixelrnn_reference_steps}


@pytest.mark.parametrize("family", ["vae", "pixelrnn"])
def test_without_unlabeled_the_step_is_bitwise_the_labelled_only_one(family):
    images, labels, _ = batch()
    trainer, reference = make_trainer(family), make_trainer(family)
    untouched = new_params(trainer, family)
    rng = torch.Generator().manual_seed(5)
    logs = [trainer.training_step(images, labels, rng, step) for step in range(2)]
    REFERENCE[family](reference, images, labels, torch.Generator().manual_seed(5), 2)

    assert not any(k.startswith("unlabeled_") for k in logs[-1])
    expected, got = old_params(reference, family), old_params(trainer, family)
    assert expected.keys() == got.keys()
    assert [k for k in expected if not torch.equal(expected[k], got[k])] == []
    for name, value in new_params(trainer, family).items():
        assert torch.equal(value, untouched[name]), name
        assert trainer.get_parameter(name).grad is None, name


@pytest.mark.parametrize("family", ["vae", "pixelrnn"])
def test_unlabeled_images_change_the_update_and_are_reported(family):
    images, labels, unlabeled = batch()
    plain, semi = make_trainer(family), make_trainer(family)
    before = new_params(semi, family)
    plain.training_step(images, labels, torch.Generator().manual_seed(5), 0)
    out = semi.training_step(images, labels, torch.Generator().manual_seed(5), 0, unlabeled=unlabeled)

    assert type(semi).uses_unlabeled is True
    assert math.isfinite(out[UNLABELED_KEY[family]]) and math.isfinite(out["loss"])
    differ = [k for k, v in old_params(plain, family).items() if not torch.equal(v, old_params(semi, family)[k])]
    assert any(k.startswith("generator.") for k in differ)
    # The parameters that exist for unlabelled images were trained by them.
    assert all(not torch.equal(v, before[k]) for k, v in new_params(semi, family).items())


def test_vae_unlabeled_bound_is_m2s_expectation_over_labels_plus_entropy():
    trainer = make_trainer("vae", num_classes=3, kl_warmup=0)
    _, _, x = batch()
    eps = torch.randn(x.shape[0], trainer.config.latent_dim, generator=torch.Generator().manual_seed(3))
    bound, entropy = trainer.unlabeled_bound(x, eps, kl_weight=0.7)

    q = torch.softmax(trainer.classifier(x), dim=1)
    per_label = torch.stack([sum(t * w for t, w in zip(trainer._image_terms(x, torch.full((6,), y), eps), (1, 0.7)))
                             for y in range(3)], dim=1)
    h = -(q * q.log()).sum(1)
    assert torch.allclose(bound, ((q * per_label).sum(1) - h + math.log(3)).mean(), rtol=1e-5)
    assert torch.allclose(entropy, h.mean())


@pytest.mark.parametrize("num_classes, unlabeled_classes, per_image", [(3, 10, 3), (5, 2, 2), (5, 1, 1)])
def test_vae_decodes_each_unlabelled_image_with_its_most_likely_labels(num_classes, unlabeled_classes, per_image):
    trainer = make_trainer("vae", num_classes=num_classes, unlabeled_classes=unlabeled_classes)
    images, labels, unlabeled = batch(num_classes=num_classes)
    with torch.no_grad():
        likely = trainer.classifier(unlabeled).topk(per_image, dim=1).indices.sort(dim=1).values
    calls = []
    decode = trainer.generator.logits
    trainer.generator.logits = lambda z, y: calls.append(y) or decode(z, y)
    out = trainer.training_step(images, labels, torch.Generator().manual_seed(0), 0, unlabeled=unlabeled)

    assert math.isfinite(out["unlabeled_elbo"]) and math.isfinite(out["classifier_loss"])
    # The labelled batch, then each unlabelled image once per candidate label: bounded compute.
    assert [len(y) for y in calls] == [6, 6 * per_image]
    assert torch.equal(calls[1].reshape(6, per_image).sort(dim=1).values, likely)


def test_vae_m2_classifier_learns_digits_from_the_unlabelled_bound_alone():
    """With no classification loss (weight 0), only M2's unlabelled bound trains q(y|x): it
    learns which decoder explains an image, i.e. its digit."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    keep = torch.tensor(digits.target) < 3
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None][keep]
    y = torch.tensor(digits.target)[keep]
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    test, pool = perm[:150], perm[150:]
    labelled = torch.cat([pool[y[pool] == c][:3] for c in range(3)])  # 3 labels per class
    trainer = make_trainer("vae", num_classes=3, classifier_weight=0.0, classifier_width=8, kl_warmup=0)
    rng = torch.Generator().manual_seed(1)
    for step in range(250):
        li = labelled[torch.randint(len(labelled), (32,), generator=rng)]
        ui = pool[torch.randint(len(pool), (32,), generator=rng)]
        out = trainer.training_step(x[li], y[li], rng, step, unlabeled=x[ui])
    accuracy = (trainer.classify(x[test]).argmax(1) == y[test]).float().mean().item()
    assert accuracy > 0.7, accuracy  # chance: 1/3; 0.79-0.93 over 4 seeds
    assert out["unlabeled_entropy"] < math.log(3) - 0.2


def test_pixelrnn_unlabelled_rows_use_the_no_label_vectors():
    trainer = make_trainer("pixelrnn")
    labels = torch.tensor([0, 1, 2, 0])
    no_label = torch.tensor([False, True, False, True])
    first, gates = trainer.conditioning(labels, no_label)
    g = trainer.generator
    assert torch.equal(first[no_label], trainer.no_label.input.expand(2, -1))
    assert torch.equal(first[~no_label], g.embed_in(labels[~no_label]))
    assert torch.equal(gates[0][no_label], trainer.no_label.gates[0].expand(2, -1))
    assert torch.equal(gates[0][~no_label], g.rnn[0].embed(labels[~no_label]))


def test_pixelrnn_label_dropout_trains_the_no_label_vectors_without_unlabelled_images():
    images, labels, _ = batch(n=16)
    trainer = make_trainer("pixelrnn", label_dropout=0.5)
    before = new_params(trainer, "pixelrnn")
    out = trainer.training_step(images, labels, torch.Generator().manual_seed(0), 0)
    assert sorted(out) == ["bits_per_dim", "loss"]
    assert all(not torch.equal(v, before[k]) for k, v in new_params(trainer, "pixelrnn").items())


@pytest.mark.parametrize("family", ["vae", "pixelrnn"])
def test_a_generator_file_from_before_loads_strictly_and_samples_the_same(family, tiny_generator, tmp_path):
    module, card = tiny_generator(family)
    state = module.state_dict()
    assert [(k, tuple(v.shape)) for k, v in state.items()] == OLD_GENERATOR_STATE[family]
    path = tmp_path / "old.safetensors"
    save_file({k: state[k].contiguous() for k, _ in OLD_GENERATOR_STATE[family]}, str(path),
              metadata={METADATA_KEY: card.to_json()})
    loaded, _ = load_generator(path)
    noise = torch.rand(3, *module.noise_spec()["shape"], generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2])
    with torch.no_grad():
        assert torch.equal(loaded(noise, labels), module(noise, labels))


@pytest.mark.parametrize("family", ["vae", "pixelrnn"])
def test_a_checkpoint_from_before_resumes(family):
    images, labels, unlabeled = batch()
    old = make_trainer(family, seed=0)
    old.training_step(images, labels, torch.Generator().manual_seed(0), 0)
    (name, opt), = old.optimizers().items()
    trainer_state = {k: v for k, v in old.state_dict().items() if not k.startswith(NEW_PREFIX[family])}
    opt_state = opt.state_dict()
    opt_state = {"state": opt_state["state"], "param_groups": opt_state["param_groups"][:1]}  # one group then

    resumed = make_trainer(family, seed=1)
    fresh = new_params(resumed, family)
    resumed.load_state_dict(trainer_state)  # strict
    resumed.optimizers()[name].load_state_dict(opt_state)

    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in trainer_state.items())
    assert all(torch.equal(v, fresh[k]) for k, v in new_params(resumed, family).items())
    moments = resumed.optimizers()[name].state_dict()["state"]
    assert all(torch.equal(moments[i]["exp_avg"], opt_state["state"][i]["exp_avg"]) for i in opt_state["state"])
    out = resumed.training_step(images, labels, torch.Generator().manual_seed(0), 1, unlabeled=unlabeled)
    assert math.isfinite(out[UNLABELED_KEY[family]])


def test_pixelrnn_sampling_never_uses_the_no_label_vectors():
    trainer = make_trainer("pixelrnn")
    noise, labels = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 2])
    before = trainer.sampling_generator()(noise, labels)
    with torch.no_grad():
        for p in trainer.no_label.parameters():
            p.fill_(50.0)
    assert torch.equal(trainer.sampling_generator()(noise, labels), before)
    assert [k for k, _ in OLD_GENERATOR_STATE["pixelrnn"]] == list(trainer.sampling_generator().state_dict())


@pytest.mark.parametrize("family, overrides, message", [
    ("vae", {"classifier_weight": -1.0}, "classifier_weight must be in [0.0, 10000.0], got -1.0"),
    ("vae", {"unlabeled_classes": 0}, "unlabeled_classes must be in [1, 4096], got 0"),
    ("vae", {"classifier_width": 2.5}, "classifier_width must be an integer, got 2.5"),
    ("pixelrnn", {"unlabeled_weight": -0.5}, "unlabeled_weight must be in [0.0, 100.0], got -0.5"),
    ("pixelrnn", {"label_dropout": 1.0}, "label_dropout must be in [0.0, 0.9], got 1.0"),
])
def test_bad_unlabeled_knobs_are_refused(family, overrides, message):
    with pytest.raises(SynthaugError, match=re.escape(message)):
        make_trainer(family, **overrides)


@pytest.mark.parametrize("family, defaults", [
    ("vae", {"classifier_weight": 0.5, "classifier_width": 32, "unlabeled_classes": 10}),
    ("pixelrnn", {"unlabeled_weight": 1.0, "label_dropout": 0.0}),
])
def test_an_old_card_config_gets_the_defaults(family, defaults):
    trainer = make_trainer(family)  # TINY: a config written before the new knobs
    assert {k: getattr(trainer.config, k) for k in defaults} == defaults
    assert {k: trainer.config_dict()[k] for k in defaults} == defaults
