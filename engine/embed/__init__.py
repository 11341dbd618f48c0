"""Sentence embeddings (MiniLM-L6) for the router's slow path and the embedding comparison."""
