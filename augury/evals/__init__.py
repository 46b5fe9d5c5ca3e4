"""Evaluation: model backends, YAML tasks, metrics, and code execution in a sandbox (`augury eval`)."""
