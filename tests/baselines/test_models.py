"""Every baseline: output shapes with its recommended config, and one optimizer step that changes both nets."""

from __future__ import annotations

import pytest
import torch

from baselines.registry import MODEL_NAMES, load_model

BATCH = 4


def discriminator_score(output):
    return output[0] if isinstance(output, tuple) else output  # acgan also returns class logits


def seeded_nets(name: str):
    """(module, its recommended config, G, D) for 2 classes, initialised from seed 0."""
    model = load_model(name)
    config = model.Config()
    torch.manual_seed(0)
    return model, config, model.Generator(config, 2), model.Discriminator(config, 2)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_shapes(name):
    model, config, G, D = seeded_nets(name)
    labels = torch.tensor([0, 1, 0, 1])
    images = G(torch.randn(BATCH, config.z_dim), labels)
    assert images.shape == (BATCH, 1, 64, 64)
    assert images.min() >= -1 and images.max() <= 1  # tanh output, the range the packer expects
    assert discriminator_score(D(images, labels)).shape == (BATCH,)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_one_optimizer_step_updates_both_nets(name):
    model, config, G, D = seeded_nets(name)
    opt_G = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    opt_D = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))
    real, labels = torch.rand(BATCH, 1, 64, 64) * 2 - 1, torch.tensor([0, 1, 1, 0])
    g_before = [p.detach().clone() for p in G.parameters()]
    d_before = [p.detach().clone() for p in D.parameters()]

    fake = G(torch.randn(BATCH, config.z_dim), labels)
    d_loss, _ = model.discriminator_loss(D, real, fake.detach(), labels, config)
    opt_D.zero_grad()
    d_loss.backward()
    opt_D.step()
    g_loss, _ = model.generator_loss(D, fake, labels, config)
    opt_G.zero_grad()
    g_loss.backward()
    opt_G.step()

    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, G.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, D.parameters(), strict=True))


@pytest.mark.parametrize("name", ["wgan_gp", "sngan", "dcgan"])
def test_discriminator_uses_the_label(name):
    # The course team's WGAN-GP ignored labels; a conditional D must score one image differently per label.
    model = load_model(name)
    torch.manual_seed(0)
    D = model.Discriminator(model.Config(), 2)
    torch.nn.init.normal_(next(m for m in D.modules() if isinstance(m, torch.nn.Embedding)).weight)
    images = torch.rand(2, 1, 64, 64).repeat(2, 1, 1, 1)
    scores = D.eval()(images, torch.tensor([0, 0, 1, 1]))
    assert not torch.allclose(scores[:2], scores[2:])


def test_unknown_model_names_the_choices():
    with pytest.raises(ValueError, match="sngan"):
        load_model("stylegan9")
