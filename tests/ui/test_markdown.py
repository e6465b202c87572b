"""Text panels: markdown rendered to a tree of allowed tags; raw HTML and unsafe links stay inert."""

from __future__ import annotations

import json
from typing import Any

import httpx

from heron.ui.markdown import render_tree

HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'


def _tags(nodes: list) -> set[str]:
    out: set[str] = set()
    for n in nodes:
        if isinstance(n, dict):
            out.add(n["tag"])
            out |= _tags(n["children"])
    return out


def _text(nodes: list) -> str:
    return "".join(n if isinstance(n, str) else _text(n["children"]) for n in nodes)


def test_markdown_tree() -> None:
    tree: Any = render_tree("# Runbook\n\nSee **the docs** and `kubectl get pods`.\n\n* one\n* [two](https://example.org/x)\n\n"
                       "| a | b |\n|---|--:|\n| 1 | 2 |\n\n```\nSELECT 1\n```\n")
    assert tree[0] == {"tag": "h1", "children": ["Runbook"]}
    assert tree[1]["children"][1] == {"tag": "strong", "children": ["the docs"]}
    assert {"tag": "code", "children": ["kubectl get pods"]} in tree[1]["children"]
    link = tree[2]["children"][1]["children"][0]["children"][0]
    assert link == {"tag": "a", "href": "https://example.org/x", "children": ["two"]}
    assert _tags(tree) >= {"table", "thead", "tbody", "tr", "th", "td", "pre", "ul", "li"}
    td = next(n for n in tree if n["tag"] == "table")["children"][1]["children"][0]["children"][1]
    assert td["align"] == "right"


def test_raw_html_and_unsafe_links_are_text() -> None:
    tree: Any = render_tree(f"Hello {HOSTILE}\n\n<div onclick=x>block</div>\n\n[click](javascript:alert(1)) "
                       "[data](data:text/html,<b>) ![img](https://evil.example/x.png) [ok](/d/heron-self)")
    assert HOSTILE in _text(tree)  # shown as the characters it is
    assert "img" not in _tags(tree) and "script" not in _tags(tree) and "div" not in _tags(tree)
    links = [n for n in tree[-1]["children"] if isinstance(n, dict) and n["tag"] == "a"]
    assert [x.get("href") for x in links] == ["https://evil.example/x.png", "/d/heron-self"]  # image → plain link
    assert "javascript" in _text(tree)  # the refused links remain visible text


async def test_markdown_endpoint(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/heron/markdown", json={"text": "*hi*"})
    assert r.status_code == 200 and r.json() == {"tree": [{"tag": "p", "children": [{"tag": "em", "children": ["hi"]}]}]}
    r = await client.post("/api/heron/markdown", content=b'{"text": ')
    assert r.status_code == 400 and "line 1 column" in r.json()["error"]
    assert (await client.post("/api/heron/markdown", json={"text": 3})).status_code == 400
    big = json.dumps({"text": "x" * 100_001})
    assert (await client.post("/api/heron/markdown", content=big)).status_code == 413
    assert (await client.post("/api/heron/markdown", json={"text": "x"}, headers={"Authorization": ""})).status_code == 401
