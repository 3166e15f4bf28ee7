"""Training, evaluation, prediction, export and measurement."""
