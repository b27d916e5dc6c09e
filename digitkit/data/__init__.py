"""Datasets: where they live on disk, how they are fetched and read into memory."""
