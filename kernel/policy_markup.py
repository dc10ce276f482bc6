"""HTML, Markdown and LaTeX from a container, made harmless for the notebook's page.

JupyterLab renders what a kernel sends *during* execution as trusted: HTML output is put
into the page of the user's Jupyter session as it is. A container is not the user, so
its markup is sanitised here, on the kernel side, with nh3 (Python bindings of the Rust
sanitiser ammonia, built on html5ever: it parses as a browser does):

* kept: text formatting, headings, lists, tables (a pandas DataFrame still reads as a
  table), links to ``http(s):``/``mailto:``, images whose source is ``https:`` or an
  inline PNG/JPEG/GIF/WebP ``data:`` URL;
* removed: ``<script>`` and ``<style>`` with their content, event handlers, ``<iframe>``,
  ``<object>``, ``<embed>``, forms and inputs, ``<base>``, ``<meta>``, ``<link>``, SVG and
  MathML inside HTML, ``style``/``class``/``id`` attributes (no overlays dressed in the
  page's own classes, no DOM clobbering), ``javascript:``/``vbscript:``/``data:text/html``
  and relative URLs (``<img src="/logout">`` would act with the user's cookies).

Markdown that is *plain* (:func:`plain_markdown`: no ``<`` or ``&`` at all -- so no raw
HTML, no autolinks, no entities -- no ``javascript:``-like text, every link and image
absolute and harmless, no LaTeX that reaches the page) is sent as ``text/markdown`` for
JupyterLab to render. Any other Markdown is rendered to HTML here (mistune, raw HTML
allowed) and sanitised like HTML; it is sent as ``text/html`` with the Markdown source as
``text/plain``.

LaTeX is typeset by MathJax in the browser, where a few commands reach the page
(``\\href``, ``\\style``, ``\\class``, ``\\require``, ...): LaTeX using one of them is shown as
text.
"""

from __future__ import annotations

import re
from typing import Any

from .policy_images import safe_image_url

__all__ = [
    "UNSAFE_LATEX",
    "html_from_markdown",
    "plain_markdown",
    "sanitize_html",
    "unsafe_latex",
]

_TAGS = {
    "a", "abbr", "acronym", "b", "bdi", "bdo", "blockquote", "br", "caption", "center", "cite",
    "code", "col", "colgroup", "data", "dd", "del", "details", "dfn", "div", "dl", "dt", "em",
    "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "kbd", "li", "mark", "ol", "p", "pre", "q", "rp", "rt", "ruby", "s", "samp", "small",
    "span", "strike", "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "time", "tr", "tt", "u", "ul", "var", "wbr",
}
# Removed together with their content: what they hold is code or data, never text to read.
_DROP_CONTENT = {"script", "style", "template", "noscript", "iframe", "object", "svg", "math",
                 "noembed", "noframes", "xmp", "textarea", "select"}
_CELL = {"align", "colspan", "rowspan", "scope", "headers", "abbr"}
_ATTRIBUTES = {
    "*": {"title", "lang", "dir"},
    "a": {"href", "hreflang"},
    "img": {"src", "alt", "width", "height"},
    "table": {"border", "summary", "align"},
    "td": _CELL,
    "th": _CELL,
    "tr": {"align"},
    "col": {"span", "align"},
    "colgroup": {"span", "align"},
    "ol": {"start", "type"},
    "ul": {"type"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"datetime"},
    "ins": {"datetime"},
    "time": {"datetime"},
    "data": {"value"},
    "details": {"open"},
}
_LINK_SCHEMES = ("http://", "https://", "mailto:")
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]+")
_TAG = re.compile(r"<\s*([a-zA-Z][a-zA-Z0-9:-]*)")
_HANDLER = re.compile(r"[\s\"'/](on[a-zA-Z]+)\s*=")
_BAD_URL = re.compile(r"(javascript|vbscript)\s*:|(data)\s*:\s*text/html", re.I)
_STYLE_ATTR = re.compile(r"[\s\"'/]style\s*=", re.I)


def _attribute_filter(element: str, attribute: str, value: str) -> str | None:
    """Second line after nh3's own URL check: only absolute, expected URLs survive."""
    if attribute == "href" and element == "a":
        url = _URL_NOISE.sub("", value)
        if url.startswith("#") or url.lower().startswith(_LINK_SCHEMES):
            return value
        return None
    if attribute == "src":
        return value if safe_image_url(value, https=True) else None
    return value


def _clean(html: str) -> str:
    import nh3

    cleaned: str = nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=_DROP_CONTENT,
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer",
        strip_comments=True,
    )
    return cleaned


def _removed(html: str) -> list[str]:
    """A short account, for the note, of what sanitising takes away (approximate)."""
    found: set[str] = set()
    for match in _TAG.finditer(html):
        name = match.group(1).lower()
        if name not in _TAGS:
            found.add(f"<{name}>")
    found.update(f"{m.group(1).lower()}=" for m in _HANDLER.finditer(html))
    if _STYLE_ATTR.search(html):
        found.add("style=")
    for m in _BAD_URL.finditer(html):
        found.add(f"{m.group(1).lower()}: URLs" if m.group(1) else "data:text/html URLs")
    return sorted(found)


def sanitize_html(html: str) -> tuple[str, list[str]]:
    """``html`` with only harmless markup left, and a list of what was taken out."""
    return _clean(html), _removed(html)


_MARKDOWN_PLUGINS = ["table", "strikethrough", "math", "url"]
_SCHEME_TEXT = re.compile(r"(javascript|vbscript|livescript|data|file|blob)\s*:", re.I)


def _urls(tokens: list[Any]) -> list[tuple[str, str]]:
    """(token type, url) of every link and image in a mistune AST."""
    found = []
    for token in tokens:
        if not isinstance(token, dict):
            continue
        url = (token.get("attrs") or {}).get("url")
        if token.get("type") in ("link", "image") and isinstance(url, str):
            found.append((token["type"], url))
        found += _urls(token.get("children") or [])
    return found


def plain_markdown(markdown: str) -> bool:
    """Whether ``markdown`` can go to the frontend as Markdown, unconverted.

    Conservative on purpose: the browser's Markdown parser (marked, in JupyterLab) is not
    the one checking here, so anything two parsers might read differently -- raw HTML,
    autolinks, entities, a scheme spelled in the text -- sends the Markdown the HTML way.
    """
    if "<" in markdown or "&" in markdown or _SCHEME_TEXT.search(_URL_NOISE.sub("", markdown)):
        return False
    if unsafe_latex(markdown) is not None:
        return False
    import mistune

    tokens = mistune.create_markdown(renderer=None, plugins=_MARKDOWN_PLUGINS)(markdown)
    for kind, url in _urls(tokens if isinstance(tokens, list) else []):
        clean = _URL_NOISE.sub("", url).lower()
        if kind == "image" and not clean.startswith("https://"):
            return False
        if kind == "link" and not (clean.startswith("#") or clean.startswith(_LINK_SCHEMES)):
            return False
    return True


def html_from_markdown(markdown: str) -> tuple[str, list[str]]:
    """Markdown rendered to sanitised HTML (tables, strikethrough, math kept as text)."""
    import mistune

    render = mistune.create_markdown(escape=False, plugins=_MARKDOWN_PLUGINS)
    html = render(markdown)
    assert isinstance(html, str)
    return sanitize_html(html)


# MathJax commands that make links, styles, classes, ids or load code: the page sees them.
UNSAFE_LATEX = ("href", "url", "style", "class", "cssId", "require", "unicode", "data",
                "html", "texttip", "toggle", "mmlToken", "bbox", "includegraphics")
_LATEX_COMMAND = re.compile(r"\\(" + "|".join(UNSAFE_LATEX) + r")(?![A-Za-z])")


def unsafe_latex(tex: str) -> str | None:
    """The first command of ``tex`` that reaches the page (``\\href``...), or None."""
    found = _LATEX_COMMAND.search(tex)
    return f"\\{found.group(1)}" if found else None
