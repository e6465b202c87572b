"""Markdown for text panels, rendered safely: markdown-it-py (CommonMark + tables and
strikethrough) with raw HTML disabled, turned into a JSON tree of allowed tags and plain text.

The browser builds that tree with createElement/textContent (panels.js `buildTree`), so no HTML
string written by a dashboard author ever reaches the DOM: `<script>` in the text stays text,
links keep only http(s), mailto and same-origin targets, and images are not rendered (they would
load from anywhere).
"""

from __future__ import annotations

from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token

MAX_CHARS = 100_000
_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"]).disable("image")

Node = str | dict[str, Any]


def _safe_href(href: str) -> str | None:
    h = href.strip()
    if h.startswith("/") and not h.startswith("//"):
        return h
    if h.lower().startswith(("http://", "https://", "mailto:")) or h.startswith("#"):
        return h
    return None


def _open(tok: Token) -> dict[str, Any]:
    node: dict[str, Any] = {"tag": tok.tag, "children": []}
    if tok.tag == "a":
        href = _safe_href(str(tok.attrs.get("href", "")))
        if href:
            node["href"] = href
    elif tok.tag == "ol" and "start" in tok.attrs:
        node["start"] = int(tok.attrs["start"])
    elif tok.tag in ("td", "th"):
        style = str(tok.attrs.get("style", ""))
        if style.startswith("text-align:"):
            node["align"] = style.split(":", 1)[1]
    return node


def _walk(tokens: list[Token]) -> list[Node]:
    root: dict[str, Any] = {"children": []}
    stack = [root]
    for tok in tokens:
        top = stack[-1]["children"]
        if tok.nesting == 1:
            node = _open(tok)
            top.append(node)
            stack.append(node)
        elif tok.nesting == -1:
            if len(stack) > 1:
                stack.pop()
        elif tok.type == "inline":
            top.extend(_walk(tok.children or []))
        elif tok.type in ("text", "html_inline", "html_block"):
            _text(top, tok.content)
        elif tok.type == "code_inline":
            top.append({"tag": "code", "children": [tok.content]})
        elif tok.type in ("fence", "code_block"):
            top.append({"tag": "pre", "children": [{"tag": "code", "children": [tok.content]}]})
        elif tok.type == "softbreak":
            _text(top, "\n")
        elif tok.type == "hardbreak":
            top.append({"tag": "br", "children": []})
        elif tok.type == "hr":
            top.append({"tag": "hr", "children": []})
    return list(root["children"])


def _text(children: list[Node], text: str) -> None:
    if children and isinstance(children[-1], str):
        children[-1] += text
    else:
        children.append(text)


def render_tree(text: str) -> list[Node]:
    """Markdown source → a tree of {"tag", "children", [href|start|align]} and strings."""
    return _walk(_md.parse(text[:MAX_CHARS]))
