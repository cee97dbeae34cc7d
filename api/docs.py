"""The OpenAPI document as one plain HTML page (no scripts, fonts or CDN): every operation and
schema, `$ref`s as links within the page, the texts' Markdown code spans and links made safe HTML."""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any
from urllib.parse import urlsplit

JSON = dict[str, Any]

#: The Markdown the document's texts use: `code` spans and [text](url) links.
_INLINE = re.compile(r"`([^`\n]+)`|\[([^\]\n]+)\]\(([^)\s]+)\)")
#: Link targets a description may have: this site's pages and anchors, or plain web pages.
_SAFE_SCHEMES = ("", "http", "https")

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2.5rem; }
section.op { border: 1px solid #ddd; border-radius: 6px; padding: 0.5rem 1rem; margin: 1rem 0; }
.method { font: bold 13px monospace; padding: 2px 6px; border-radius: 4px; color: #fff; background: #555; }
.get { background: #2a6f97; } .post { background: #2d7d46; } .delete { background: #a23b3b; }
code, pre { font-family: ui-monospace, monospace; font-size: 13px; background: #f5f5f5; }
pre { padding: 0.5rem; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; margin: 0.5rem 0; }
th, td { text-align: left; border-bottom: 1px solid #eee; padding: 4px 8px; vertical-align: top; }
"""


def inline(text: str) -> str:
    """A description's Markdown code spans and links as HTML; everything else escaped as text.

    A link whose target is not a web page or a path on this site (`javascript:`, `data:`) stays text.
    """
    parts = []
    last = 0
    for match in _INLINE.finditer(text):
        parts.append(escape(text[last : match.start()]))
        code, label, url = match.groups()
        if code is not None:
            parts.append(f"<code>{escape(code)}</code>")
        elif urlsplit(url).scheme.lower() in _SAFE_SCHEMES:
            parts.append(f'<a href="{escape(url)}" rel="noopener noreferrer">{inline(label)}</a>')
        else:
            parts.append(escape(match.group(0)))
        last = match.end()
    parts.append(escape(text[last:]))
    return "".join(parts)


def paragraphs(text: str) -> str:
    """A description as Markdown reads it: paragraphs between blank lines, lines within one joined."""
    blocks = [" ".join(block.split()) for block in re.split(r"\n\s*\n", text.strip())]
    return "".join(f"<p>{inline(block)}</p>" for block in blocks if block)


def type_text(schema: JSON) -> str:
    """A short HTML description of a schema's type, linking references."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f'<a href="#schema-{escape(name)}">{escape(name)}</a>'
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            joiner = " & " if combinator == "allOf" else " | "
            return joiner.join(type_text(member) for member in schema[combinator])
    if "const" in schema:
        return f"<code>{escape(json.dumps(schema['const']))}</code>"
    text = escape(str(schema.get("type", "any")))
    if "format" in schema:
        text += f" ({escape(schema['format'])})"
    if "enum" in schema:
        text += ": " + ", ".join(f"<code>{escape(str(value))}</code>" for value in schema["enum"])
    limits = [f"{key} {schema[key]}" for key in ("minimum", "maximum", "pattern", "default") if key in schema]
    if limits:
        text += f" <small>[{escape(', '.join(limits))}]</small>"
    return text


def property_rows(schema: JSON, prefix: str = "") -> str:
    """Table rows for an object schema's properties; an inline object's own follow it as `a.b`."""
    required = set(schema.get("required", []))
    rows = []
    for name, prop in (schema.get("properties") or {}).items():
        rows.append(
            f"<tr><td><code>{escape(prefix + name)}</code>{' *' if name in required else ''}</td>"
            f"<td>{type_text(prop)}</td><td>{inline(prop.get('description', ''))}</td></tr>"
        )
        rows.append(property_rows(prop, f"{prefix}{name}."))
    return "".join(rows)


def properties_table(schema: JSON) -> str:
    """An object schema's properties as a table (empty for anything else)."""
    if not schema.get("properties"):
        return ""
    rows = property_rows(schema)
    return f"<table><tr><th>name</th><th>type</th><th>description</th></tr>{rows}</table>"


def parameters_html(parameters: list[JSON]) -> str:
    """An operation's parameters as a table."""
    if not parameters:
        return ""
    rows = "".join(
        f"<tr><td><code>{escape(p['name'])}</code>{' *' if p.get('required') else ''}</td>"
        f"<td>{escape(p['in'])}</td><td>{type_text(p.get('schema', {}))}</td>"
        f"<td>{inline(p.get('description', ''))}</td></tr>"
        for p in parameters
    )
    head = "<tr><th>name</th><th>in</th><th>type</th><th>description</th></tr>"
    return f"<h4>Parameters</h4><table>{head}{rows}</table>"


def body_html(body: JSON | None) -> str:
    """An operation's request body: one entry per media type."""
    if not body:
        return ""
    parts = []
    for media_type, content in body.get("content", {}).items():
        schema = content.get("schema", {})
        parts.append(
            f"<p><code>{escape(media_type)}</code>: {type_text(schema)}</p>{properties_table(schema)}"
        )
    return "<h4>Request body</h4>" + "".join(parts)


def responses_html(responses: JSON) -> str:
    """An operation's responses as a table: status, meaning, media types and body."""
    rows = []
    for status, response in responses.items():
        description = "<br>".join(inline(line) for line in response.get("description", "").split("\n"))
        bodies = ", ".join(
            f"<code>{escape(media_type)}</code> {type_text(content.get('schema', {}))}"
            for media_type, content in response.get("content", {}).items()
        )
        headers = ", ".join(f"<code>{escape(name)}</code>" for name in response.get("headers", {}))
        rows.append(
            f"<tr><td><b>{escape(status)}</b></td><td>{description}</td><td>{bodies}</td><td>{headers}</td></tr>"
        )
    return (
        "<h4>Responses</h4><table><tr><th>status</th><th>meaning</th><th>body</th><th>headers</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def operation_html(path: str, method: str, operation: JSON) -> str:
    """One operation as a section."""
    description = operation.get("description", "")
    return (
        f'<section class="op" id="{escape(operation["operationId"])}">'
        f'<h3><span class="method {escape(method)}">{escape(method.upper())}</span>'
        f" <code>{escape(path)}</code>"
        f" {inline(operation.get('summary', ''))}</h3>"
        + paragraphs(description)
        + parameters_html(operation.get("parameters", []))
        + body_html(operation.get("requestBody"))
        + responses_html(operation.get("responses", {}))
        + "</section>"
    )


def render(document: JSON) -> str:
    """The whole document as an HTML page."""
    info = document["info"]
    sections = []
    for tag in document.get("tags", []):
        operations = [
            operation_html(path, method, operation)
            for path, methods in document["paths"].items()
            for method, operation in methods.items()
            if tag["name"] in operation.get("tags", [])
        ]
        sections.append(
            f"<h2>{escape(tag['name'])}</h2>{paragraphs(tag.get('description', ''))}" + "".join(operations)
        )
    schemas = "".join(
        f'<section class="op" id="schema-{escape(name)}"><h3>{escape(name)}</h3>'
        f"{paragraphs(schema.get('description', ''))}"
        f"{properties_table(schema) or type_text(schema)}</section>"
        for name, schema in document.get("components", {}).get("schemas", {}).items()
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(info['title'])} API {escape(info['version'])}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{escape(info['title'])} API <small>{escape(info['version'])}</small></h1>"
        f"<p>{inline(info.get('description', ''))} The machine-readable contract is "
        '<a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>'
        + "".join(sections)
        + f"<h2>Schemas</h2>{schemas}</body></html>"
    )
