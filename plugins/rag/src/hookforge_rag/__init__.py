"""hookforge-rag: retrieval indexes (sentence-transformers + FAISS) built and evaluated like models."""
