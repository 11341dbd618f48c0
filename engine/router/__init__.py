"""Routers: predict, per model, the probability that its answer to a prompt is acceptable."""
