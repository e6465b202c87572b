"""The demo service: a small RAG chatbot API, instrumented by one `heron_sdk.init` call.

    POST /documents          upload a text document (chunked into SQLite)
    GET  /documents/{doc_id} one document
    POST /chat               answer a question: embed, vector search (SQLite), cache, LLM
    GET  /slow               a deliberately slow endpoint

The LLM is simulated with realistic latency (log-normal around 600 ms), token use and price,
and failure modes: rate limits (429), timeouts, and an outage switched on by the traffic
generator (`POST /admin/outage`) so an alert fires and errors become issues.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import sqlite3
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request

log = logging.getLogger("demo.chat")

CACHE_TTL = 10.0  # seconds a cached answer is served
PRICES = {"gpt-4o-mini": (0.15e-6, 0.6e-6), "claude-3-5-haiku": (0.8e-6, 4e-6)}


class LLMError(Exception):
    """The simulated provider failed (rate limit, timeout, outage)."""


class State:
    def __init__(self, seed: int | None = None) -> None:
        self.db = sqlite3.connect(":memory:", check_same_thread=False)
        self.db.executescript("""
            CREATE TABLE documents (id INTEGER PRIMARY KEY, title TEXT, body TEXT, created REAL);
            CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id INTEGER, text TEXT, vec INTEGER);
        """)
        self.lock = threading.Lock()
        self.cache: dict[str, tuple[str, float]] = {}  # question -> (answer, cached at)
        self.outage = False
        self.rng = random.Random(seed)


def _vec(text: str) -> int:
    """A 64-bit "embedding": similarity is the number of equal bits (good enough to rank)."""
    return int.from_bytes(hashlib.blake2b(text.lower().encode(), digest_size=8).digest(), "big") >> 1


def create_app(seed: int | None = None, latency_scale: float = 1.0) -> FastAPI:
    import heron_sdk

    app = FastAPI(title="heron demo: rag-chatbot")
    st = State(seed)
    app.state.demo = st

    async def llm(model: str, prompt: str) -> tuple[str, int, int]:
        provider = "openai" if model.startswith("gpt") else "anthropic"
        with heron_sdk.llm_call(provider, model) as call:
            delay = st.rng.lognormvariate(math.log(0.6), 0.5) * latency_scale
            if st.outage and provider == "openai":
                await asyncio.sleep(min(delay, 0.2))
                raise LLMError(f"{provider} {model}: 503 upstream unavailable")
            roll = st.rng.random()
            if roll < 0.02:
                await asyncio.sleep(min(delay * 3, 3))
                raise LLMError(f"{provider} {model}: request timed out")
            if roll < 0.05:
                raise LLMError(f"{provider} {model}: 429 rate limited")
            await asyncio.sleep(delay)
            prompt_tokens = len(prompt.split()) * 4 // 3 + 200
            completion_tokens = st.rng.randint(40, 400)
            pin, pout = PRICES[model]
            call.tokens(prompt=prompt_tokens, completion=completion_tokens,
                        cost=prompt_tokens * pin + completion_tokens * pout)
            return f"answer from {model} ({completion_tokens} tokens)", prompt_tokens, completion_tokens

    @app.post("/documents")
    async def upload(request: Request) -> dict[str, Any]:
        doc = await request.json()
        title, body = str(doc.get("title", "untitled")), str(doc.get("body", ""))
        if not body:
            raise HTTPException(422, "body is empty")
        with heron_sdk.document("text") as op:
            chunks = [body[i:i + 200] for i in range(0, len(body), 200)]
            await asyncio.sleep(0.01 * len(chunks) * latency_scale)
            with heron_sdk.rag_stage("embedding") as emb:
                vecs = [_vec(c) for c in chunks]
                emb.embeddings(len(vecs))
            with heron_sdk.db_query("insert", "documents"), st.lock:
                cur = st.db.execute("INSERT INTO documents (title, body, created) VALUES (?, ?, ?)",
                                    (title, body, time.time()))
                doc_id = cur.lastrowid
                st.db.executemany("INSERT INTO chunks (doc_id, text, vec) VALUES (?, ?, ?)",
                                  [(doc_id, c, v) for c, v in zip(chunks, vecs, strict=True)])
            op.data["document.chunks"] = len(chunks)
        heron_sdk.business_event("document_uploaded")
        log.info("document stored", extra={"doc_id": doc_id, "chunks": len(chunks)})
        return {"id": doc_id, "chunks": len(chunks)}

    @app.get("/documents/{doc_id}")
    async def get_document(doc_id: int) -> dict[str, Any]:
        with heron_sdk.db_query("select", "documents"), st.lock:
            row = st.db.execute("SELECT id, title FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            raise HTTPException(404, "no such document")
        return {"id": row[0], "title": row[1]}

    @app.post("/chat")
    async def chat(request: Request) -> dict[str, Any]:
        q = (await request.json()).get("question", "")
        model = "gpt-4o-mini" if st.rng.random() < 0.7 else "claude-3-5-haiku"
        with heron_sdk.cache_lookup("answers") as c:
            entry = st.cache.get(q)
            # Answers expire, as a real answer cache's do: with 8 questions and no expiry every
            # question was cached within ~20 s, the LLM was no longer called, and the outage's
            # error ratio (0/0) could not fire its alert.
            cached = entry[0] if entry is not None and time.monotonic() - entry[1] < CACHE_TTL else None
            c.hit(cached is not None)
        if cached:
            return {"answer": cached, "cached": True}
        try:
            async with heron_sdk.rag_query():
                with heron_sdk.rag_stage("embedding") as emb:
                    qv = _vec(q)
                    emb.embeddings(1)
                with heron_sdk.rag_stage("vector_search") as vs, st.lock:
                    rows = st.db.execute("SELECT text, vec FROM chunks ORDER BY id DESC LIMIT 500").fetchall()
                    best = sorted(rows, key=lambda r: bin(qv ^ r[1]).count("1"))[:4]
                    vs.chunks(len(best))
                async with heron_sdk.rag_stage("generation"):
                    answer, _, _ = await llm(model, q + " " + " ".join(t for t, _ in best))
        except LLMError as exc:
            log.error("chat failed: %s", exc, extra={"model": model})
            raise
        if st.rng.random() < 0.3:
            st.cache[q] = (answer, time.monotonic())
        heron_sdk.business_event("chat_answered")
        log.info("chat answered", extra={"model": model, "chunks": len(best)})
        return {"answer": answer, "cached": False}

    @app.get("/slow")
    async def slow() -> dict[str, Any]:
        await asyncio.sleep(st.rng.uniform(0.5, 1.5) * latency_scale)
        return {"ok": True}

    @app.post("/admin/outage")
    async def outage(request: Request) -> dict[str, Any]:
        st.outage = bool((await request.json()).get("on"))
        log.warning("LLM outage simulation %s", "on" if st.outage else "off")
        return {"outage": st.outage}

    heron_sdk.health.add_check("db", lambda: st.db.execute("SELECT 1").fetchone())
    heron_sdk.health.add_check("cache", lambda: True)
    return app
