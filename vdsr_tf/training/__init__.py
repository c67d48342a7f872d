"""Fitting the network: schedule, callbacks, ``train()`` and the JAX engine."""
