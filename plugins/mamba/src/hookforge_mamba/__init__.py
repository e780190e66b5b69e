"""hookforge-mamba: long-document classifiers and language models on Mamba layers."""
