"""SNGAN's losses pull each net the right way: a D step widens D(real) - D(fake), a G step raises D(fake).

Both checks go through DiffAugment as the trainer does (same augmentation draw before and after the step), so a
flipped hinge sign, a detached augmentation or a gradient that never reaches G would fail here. D runs in eval mode
(after its power iteration has settled) so spectral norm holds still: each step is plain descent on one function.
"""

from __future__ import annotations

import torch

from baselines import sngan
from baselines.augment import diff_augment

CONFIG = sngan.Config(width=4, z_dim=16)
LABELS = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])


def augmented(D, scale=1.0):
    def critic(images, labels):
        torch.manual_seed(0)  # the same augmentation on every call, so before/after compare one function
        return scale * D(diff_augment(images, CONFIG.augment), labels)
    return critic


def nets_and_batch():
    torch.manual_seed(0)
    G, D = sngan.Generator(CONFIG, 2), sngan.Discriminator(CONFIG, 2)
    real = torch.rand(len(LABELS), 1, 64, 64) * 2 - 1
    with torch.no_grad():  # spectral norm's u, v start random: let the power iteration settle as training would
        for _ in range(20):
            D(real, LABELS)
    D.eval()
    return G, D, real, torch.randn(len(LABELS), CONFIG.z_dim)


def adam(net, lr):
    return torch.optim.Adam(net.parameters(), lr=lr, betas=(CONFIG.beta1, CONFIG.beta2))


def test_discriminator_step_widens_the_real_fake_margin():
    G, D, real, z = nets_and_batch()
    fake = G(z, LABELS).detach()
    # Scaled so every score sits inside the hinge's margin (|score| < 1): then the loss's gradient is exactly minus
    # the margin's, and a flipped sign cannot hide behind samples the hinge ignores.
    critic = augmented(D, scale=0.1)

    def margin():
        with torch.no_grad():
            return (critic(real, LABELS) - critic(fake, LABELS)).mean().item()

    before = margin()
    assert abs(before) < 1
    loss, _ = sngan.discriminator_loss(critic, real, fake, LABELS, CONFIG)
    optimizer = adam(D, CONFIG.lr_d)
    loss.backward()
    optimizer.step()
    assert margin() > before


def test_generator_step_through_augmentation_raises_the_fake_score():
    G, D, _, z = nets_and_batch()
    critic = augmented(D)

    def fake_score():  # G stays in training mode (batch statistics), as when the trainer computes G's loss
        with torch.no_grad():
            return critic(G(z, LABELS), LABELS).mean().item()

    before = fake_score()
    loss, _ = sngan.generator_loss(critic, G(z, LABELS), LABELS, CONFIG)
    optimizer = adam(G, CONFIG.lr_g)
    loss.backward()
    optimizer.step()
    assert fake_score() > before
