"""The ``rag_index`` model: documents embedded with sentence-transformers, indexed with FAISS.

"Training" is building the index (the core's ``simple`` loop calls :meth:`RagIndex.fit`):
embed every chunk (normalised, so inner product is cosine similarity), then build the index
kind asked for: ``flat`` (exact), ``ivf`` (an inverted file with ``nlist`` lists trained on a
sample, ``nprobe`` searched; optionally product-quantised), ``hnsw`` (a graph with ``M`` links,
``ef_search``). ``predict`` embeds queries and returns each query's top-k documents (a document's
score is its best chunk's). With ``extend: RUN_DIR`` a run adds new documents to the index of an
earlier run (which stays as it was), refusing one built with another embedding model.

The checkpoint loads without pickle: the FAISS index file, the embeddings (``.npy``), and
metadata.json (document id and character span of every vector, the embedding model's name and
the sha256 of its weights, the index settings).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig, Model
from hookforge.errors import CheckpointError, ConfigError, DataError
from hookforge.types import Dataset, DatasetInfo, Predictions

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

INDEX_FILE = "index.faiss"
EMBEDDINGS_FILE = "embeddings.npy"
METADATA_FILE = "metadata.json"


class PQConfig(ComponentConfig):
    m: int = Field(0, ge=0, description="ivf: sub-quantizers of product quantisation (0: off; "
                                        "must divide the embedding size)")
    bits: int = Field(8, ge=1, le=16, description="bits per sub-quantizer code")


class IndexConfig(ComponentConfig):
    kind: Literal["flat", "ivf", "hnsw"] = Field("flat", description="flat: exact search; ivf: "
                                                 "inverted lists; hnsw: a proximity graph")
    nlist: int = Field(64, ge=1, description="ivf: number of lists (about sqrt(vectors))")
    nprobe: int = Field(8, ge=1, description="ivf: lists searched per query")
    train_size: int = Field(0, ge=0, description="ivf: vectors sampled to train it (0: all)")
    M: int = Field(32, ge=2, description="hnsw: links per node")
    ef_construction: int = Field(200, ge=1, description="hnsw: candidates while building")
    ef_search: int = Field(64, ge=1, description="hnsw: candidates while searching")
    pq: PQConfig = Field(default_factory=PQConfig)


class RagConfig(ComponentConfig):
    embedder: str = Field("minilm", description="a sentence-transformers model directory, or "
                                                "'minilm' (packaged all-MiniLM-L6-v2, offline)",
                          json_schema_extra={"path": True, "names": ["minilm"]})
    batch_size: int = Field(64, ge=1, description="texts embedded together")
    max_seq_length: int | None = Field(None, ge=8, description="tokens the embedder reads (default: "
                                                               "the model's)")
    index: IndexConfig = Field(default_factory=IndexConfig)
    k: int = Field(10, ge=1, description="documents returned per query")
    extend: str | None = Field(None, description="add these documents to the index of this earlier "
                                                 "rag_index run (which is left as it was)",
                               json_schema_extra={"path": True})
    exact_reference: bool = Field(True, description="approximate indexes: also search exactly, so "
                                                    "the evaluator reports recall against exact search")


def embedder_path(name: str) -> Path:
    from hookforge_rag.data import tokenizer_path

    try:
        path = tokenizer_path(name)
    except DataError as exc:
        raise ConfigError(f"model.embedder: {exc}") from None
    if not (path / "config.json").is_file():
        raise ConfigError(f"model.embedder: {path} is not a model directory (no config.json)")
    return path


@cache
def embedder_hash(path: str) -> str:
    """sha256 of the embedding model's weights (what makes two embedders the same)."""
    digest = hashlib.sha256()
    files = sorted(p for p in Path(path).rglob("*") if p.suffix in (".safetensors", ".bin", ".pt"))
    for file in files:
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass
class Hits(Predictions):
    """Each query's top-k document ids (``y_pred``) and scores (``scores``), best first; with an
    approximate index also the exact search's ids (``exact``), and the time searching took."""

    inputs: Any = None
    exact: Any = None
    search_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame({
            "query_id": list(self.inputs["query_id"]), "query": list(self.inputs["query"]),
            "hits": [[{"id": i, "score": round(float(s), 6)} for i, s in zip(ids, scores, strict=True)]
                     for ids, scores in zip(self.y_pred, self.scores, strict=True)]})


class RagIndex(Model):
    """A FAISS index over sentence-transformers embeddings (see the module docstring)."""

    Config = RagConfig
    default_loop = "simple"

    def preflight(self, run: Any) -> None:
        embedder_path(self.config.embedder)
        pq = self.config.index.pq
        if pq.m and self.config.index.kind != "ivf":
            raise ConfigError("model.index.pq: product quantisation is for kind=ivf")
        if self.config.extend is not None:
            self._base_dir()

    # -- embedding ----------------------------------------------------------------------------------
    def _encoder(self) -> Any:
        if getattr(self, "_model", None) is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            from hookforge_torch.hf import quiet_transformers

            quiet_transformers()
            self._model = SentenceTransformer(str(embedder_path(self.config.embedder)), device="cpu",
                                              local_files_only=True)
            if self.config.max_seq_length:
                self._model.max_seq_length = self.config.max_seq_length
        return self._model

    def embed(self, texts: list[str], bar: Any = None) -> np.ndarray:
        """Normalised float32 embeddings, in batches of ``batch_size`` (the bar advances per block)."""
        import numpy as np

        model = self._encoder()
        block = self.config.batch_size * 16
        parts = []
        for start in range(0, len(texts), block):
            parts.append(model.encode(texts[start:start + block], batch_size=self.config.batch_size,
                                      normalize_embeddings=True, convert_to_numpy=True,
                                      show_progress_bar=False).astype(np.float32))
            if bar is not None:
                bar.advance(len(parts[-1]))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), np.float32)

    @property
    def dim(self) -> int:
        return int(self._encoder().get_sentence_embedding_dimension())

    def embedder_identity(self) -> dict[str, str]:
        path = embedder_path(self.config.embedder)
        return {"name": self.config.embedder, "path": str(path), "sha256": embedder_hash(str(path))}

    # -- building -------------------------------------------------------------------------------------
    def build(self, run: Any, dataset: Dataset) -> None:
        if dataset.task != "retrieval":
            raise DataError(f"model 'rag_index' indexes documents; the data's task is {dataset.task} "
                            f"(use the 'documents' data source)")
        self.info = dataset.info
        self.run = run

    def _base_dir(self) -> Path:
        from hookforge.record import RunRecord

        record = RunRecord.open(self.config.extend)
        checkpoint = record.final_checkpoint_dir()
        if checkpoint is None or not (checkpoint / METADATA_FILE).is_file():
            raise ConfigError(f"model.extend: {self.config.extend} holds no rag_index checkpoint")
        return checkpoint

    def fit(self, run: Any, dataset: Dataset) -> None:
        import numpy as np

        from hookforge.progress import progress_bar

        chunks = dataset.split("train").X
        self.doc_ids = [str(d) for d in chunks["doc_id"]]
        self.spans = [[int(s), int(e)] for s, e in zip(chunks["start"], chunks["end"], strict=True)]
        base = None
        if self.config.extend is not None:
            base = self._base_dir()
            self._read(base, check_embedder=True)
            known = set(self.doc_ids_base)
            clash = next((d for d in dict.fromkeys(self.doc_ids) if d in known), None)
            if clash is not None:
                raise DataError(f"document '{clash}' is already in the index of {self.config.extend}; "
                                f"extend adds new documents only")
        self._check_nlist(len(chunks) + (len(self.doc_ids_base) if base is not None else 0))
        self._encoder()  # loading the model is not building the index
        started = time.perf_counter()
        with progress_bar(run, len(chunks), "embedding") as bar:
            vectors = self.embed([str(t) for t in chunks["text"]], bar)
        embed_s = time.perf_counter() - started
        started = time.perf_counter()
        if base is not None:  # add to the loaded index: an ivf keeps its trained lists
            self.index.add(vectors)
            self.embeddings = np.concatenate([self.embeddings, vectors])
            self.doc_ids = self.doc_ids_base + self.doc_ids
            self.spans = self.spans_base + self.spans
        else:
            self.embeddings = vectors
            self.index = self._new_index(vectors)
        add_s = time.perf_counter() - started
        documents = len(dict.fromkeys(chunks["doc_id"]))
        metrics = {"documents": float(documents), "chunks": float(len(chunks)),
                   "vectors": float(self.index.ntotal), "embed_s": embed_s, "index_s": add_s,
                   "documents_per_s": documents / max(embed_s + add_s, 1e-9)}
        run.log_metrics(metrics, step=0, epoch=None, split="build")
        if run.record is not None and run.primary:
            run.record.update_info(rag={"kind": self.config.index.kind, "vectors": int(self.index.ntotal),
                                        "embedder": self.embedder_identity(),
                                        "extends": self.config.extend})
        run.emit("index_built", **metrics)

    def _check_nlist(self, n_vectors: int) -> None:
        c = self.config.index
        if c.kind == "ivf" and c.nlist > n_vectors:
            raise ConfigError(f"model.index.nlist={c.nlist} is larger than the {n_vectors} vectors "
                              f"to index: lower nlist (about sqrt({n_vectors}) = "
                              f"{max(1, int(n_vectors ** 0.5))} is usual) or index more documents")
        if c.kind == "ivf" and c.pq.m and self.dim % c.pq.m:
            raise ConfigError(f"model.index.pq.m={c.pq.m} must divide the embedding size {self.dim}")

    def _new_index(self, vectors: np.ndarray) -> Any:
        import faiss
        import numpy as np

        c = self.config.index
        d = vectors.shape[1]
        if c.kind == "flat":
            index = faiss.IndexFlatIP(d)
        elif c.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, c.M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = c.ef_construction
            index.hnsw.efSearch = c.ef_search
        else:
            quantizer = faiss.IndexFlatIP(d)
            if c.pq.m:
                index = faiss.IndexIVFPQ(quantizer, d, c.nlist, c.pq.m, c.pq.bits,
                                         faiss.METRIC_INNER_PRODUCT)
            else:
                index = faiss.IndexIVFFlat(quantizer, d, c.nlist, faiss.METRIC_INNER_PRODUCT)
            sample = vectors
            if c.train_size and c.train_size < len(vectors):  # a seeded sample, for big corpora
                rows = np.random.default_rng(self.run.seed).choice(len(vectors), c.train_size,
                                                                   replace=False)
                sample = vectors[np.sort(rows)]
            index.train(sample)
            index.nprobe = c.nprobe
        index.add(vectors)
        return index

    # -- searching -----------------------------------------------------------------------------------
    def predict(self, inputs: Any) -> Predictions:
        import numpy as np
        import pandas as pd

        frame = inputs if isinstance(inputs, pd.DataFrame) else pd.DataFrame(
            {"query_id": [str(i) for i in range(len(inputs))], "query": list(inputs)})
        queries = self.embed([str(q) for q in frame["query"]])
        started = time.perf_counter()
        ids, scores = self._top_documents(self.index, queries)
        search_s = time.perf_counter() - started
        exact = None
        if self.config.index.kind != "flat" and self.config.exact_reference:
            import faiss

            reference = faiss.IndexFlatIP(self.embeddings.shape[1])
            reference.add(self.embeddings)
            exact = self._top_documents(reference, queries)[0]
        as_array = lambda rows: np.asarray([*rows, None], dtype=object)[:-1]  # noqa: E731
        return Hits(as_array(ids), as_array(scores), task="retrieval", inputs=frame,
                    exact=as_array(exact) if exact is not None else None, search_s=search_s)

    def _top_documents(self, index: Any, queries: np.ndarray) -> tuple[list[list[str]], list[list[float]]]:
        """Each query's k best documents: chunks searched, a document scored by its best chunk."""
        k = self.config.k
        wanted = min(index.ntotal, k * 4)  # several chunks of one document may come first
        if wanted == 0:
            return [[] for _ in queries], [[] for _ in queries]
        scores, rows = index.search(queries, wanted)
        out_ids, out_scores = [], []
        for row_ids, row_scores in zip(rows, scores, strict=True):
            best: dict[str, float] = {}
            for r, s in zip(row_ids, row_scores, strict=True):
                if r < 0:
                    continue
                doc = self.doc_ids[r]
                if doc not in best:
                    best[doc] = float(s)
                if len(best) == k:
                    break
            out_ids.append(list(best))
            out_scores.append(list(best.values()))
        return out_ids, out_scores

    # -- persistence ---------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        import faiss
        import numpy as np

        faiss.write_index(self.index, str(directory / INDEX_FILE))
        np.save(directory / EMBEDDINGS_FILE, self.embeddings, allow_pickle=False)
        (directory / METADATA_FILE).write_text(json.dumps({
            "model": "rag_index", "embedder": self.embedder_identity(), "dim": int(self.embeddings.shape[1]),
            "index": self.config.index.model_dump(), "vectors": int(self.index.ntotal),
            "doc_ids": self.doc_ids, "spans": self.spans}))

    def load(self, directory: Path, info: DatasetInfo) -> None:
        self.info = info
        self._read(directory, check_embedder=True)
        self.doc_ids, self.spans = self.doc_ids_base, self.spans_base

    def _read(self, directory: Path, *, check_embedder: bool) -> None:
        import faiss
        import numpy as np

        meta_file = directory / METADATA_FILE
        if not meta_file.is_file() or not (directory / INDEX_FILE).is_file():
            raise CheckpointError(f"{directory} has no {METADATA_FILE} and {INDEX_FILE}: it is not "
                                  f"a rag_index checkpoint")
        meta = json.loads(meta_file.read_text())
        if check_embedder:
            asked = self.embedder_identity()
            built = meta["embedder"]
            if built["sha256"] != asked["sha256"]:
                raise ConfigError(f"the index in {directory} was built with the embedding model "
                                  f"'{built['name']}' ({built['path']}, sha256 {built['sha256'][:12]}) "
                                  f"and is asked to be queried with '{asked['name']}' ({asked['path']}, "
                                  f"sha256 {asked['sha256'][:12]}); embeddings of different models "
                                  f"are not comparable")
        self.index = faiss.read_index(str(directory / INDEX_FILE))
        if hasattr(self.index, "nprobe"):
            self.index.nprobe = self.config.index.nprobe  # a search setting: the config's
        if hasattr(self.index, "hnsw"):
            self.index.hnsw.efSearch = self.config.index.ef_search
        self.embeddings = np.load(directory / EMBEDDINGS_FILE, allow_pickle=False)
        self.doc_ids_base, self.spans_base = list(meta["doc_ids"]), list(meta["spans"])
