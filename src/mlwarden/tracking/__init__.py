"""Experiment tracking: what a training run used, how it ran, and what it measured."""
