"""Evaluation: judges, the presence matrix and the metrics computed from it."""
