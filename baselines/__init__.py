"""Conditional GAN baselines, one shared trainer and the sample generator."""
