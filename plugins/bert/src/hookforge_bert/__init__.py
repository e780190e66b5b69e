"""hookforge-bert: BERT-family text classifiers (single- and multi-label) with optional LoRA,
trained by hookforge-torch's ``supervised`` loop, and the ``text`` data source."""
