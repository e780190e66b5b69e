"""hookforge-lm: causal language models, verifiable task families, generation and per-family evaluation."""
