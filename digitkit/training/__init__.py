"""The one training loop for every dataset and model, its config, and its callbacks."""
