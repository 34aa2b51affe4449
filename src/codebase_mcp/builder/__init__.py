"""The reproducible image builder: definitions → lock → store → images."""
