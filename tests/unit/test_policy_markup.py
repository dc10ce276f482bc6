"""HTML, Markdown and LaTeX from a container: tables and formatting stay, active content goes."""

from __future__ import annotations

import re

import pytest
from cellbox.kernel.policy_markup import (
    html_from_markdown,
    plain_markdown,
    sanitize_html,
    unsafe_latex,
)

# What pandas' DataFrame._repr_html_ gives (pandas 2.x), abridged.
PANDAS = """<div>
<style scoped>
    .dataframe tbody tr th:only-of-type { vertical-align: middle; }
    .dataframe thead th { text-align: right; }
</style>
<table border="1" class="dataframe">
  <thead>
    <tr style="text-align: right;">
      <th></th>
      <th>city</th>
      <th>population</th>
    </tr>
  </thead>
  <tbody>
    <tr>
      <th>0</th>
      <td>Lyon</td>
      <td>522250</td>
    </tr>
    <tr>
      <th>1</th>
      <td>Nantes</td>
      <td>320732</td>
    </tr>
  </tbody>
</table>
<p>2 rows × 2 columns</p>
</div>"""

ATTACKS = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<img src="https://ok/x.png" onload="alert(1)">',
    '<iframe src="https://evil"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    '<object data="https://evil/x.swf"></object><embed src="https://evil/x">',
    '<form action="https://evil"><input name="password"><button>go</button></form>',
    '<a href="javascript:alert(1)">click</a>',
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href=" java&#x09;script:alert(1)">click</a>',
    '<a href="vbscript:msgbox(1)">click</a>',
    '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">click</a>',
    '<img src="data:text/html,<script>alert(1)</script>">',
    '<img src="data:image/svg+xml,<svg onload=alert(1)>">',
    "<style>body { display: none }</style>",
    '<div style="position:fixed;top:0;left:0;width:100%;height:100%">fake login</div>',
    '<div class="jp-Dialog">fake dialog</div><span id="jp-main-content-panel">x</span>',
    '<base href="https://evil/">',
    '<meta http-equiv="refresh" content="0;url=https://evil">',
    '<link rel="stylesheet" href="https://evil/x.css">',
    "<svg><script>alert(1)</script></svg>",
    "<svg onload=alert(1)><circle/></svg>",
    '<math><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<details open ontoggle=alert(1)>x</details>",
    '<a href="/logout">relative</a><img src="/api/shutdown">',
    "<!--<img src=x onerror=alert(1)>-->",
]
ACTIVE = re.compile(
    r"<\s*(script|iframe|object|embed|form|input|button|style|base|meta|link|svg|math)\b"
    r"|\son[a-z]+\s*=|javascript:|java&#x09;script|vbscript:|data:text/html|data:image/svg|style=|class=|id="
    r'|href="/|src="/|src="x',
    re.I,
)


@pytest.mark.parametrize("attack", ATTACKS)
def test_active_content_is_removed(attack: str) -> None:
    assert ACTIVE.search(attack)  # the check below can see this attack
    cleaned, _ = sanitize_html(f"<p>before</p>{attack}<p>after</p>")
    assert not ACTIVE.search(cleaned), cleaned
    assert "<p>before</p>" in cleaned and "<p>after</p>" in cleaned


def test_a_pandas_table_keeps_its_rows_and_cells() -> None:
    cleaned, removed = sanitize_html(PANDAS)
    assert "<style" not in cleaned and "dataframe" not in cleaned
    rows = re.findall(r"<tr>(.*?)</tr>", cleaned, re.S)
    cells = [re.findall(r"<t[hd]>(.*?)</t[hd]>", row, re.S) for row in rows]
    assert cells == [["", "city", "population"], ["0", "Lyon", "522250"],
                     ["1", "Nantes", "320732"]]
    assert '<table border="1">' in cleaned and "2 rows × 2 columns" in cleaned
    assert removed == ["<style>", "style="]


def test_formatting_links_and_images_survive() -> None:
    html = (
        '<h2>Title</h2><p><b>bold</b> <i>it</i> <code>x</code> <sub>1</sub></p><ul><li>one</li>'
        '</ul><a href="https://example.org/a?b=1">link</a> <a href="#sec">anchor</a> '
        '<a href="mailto:a@b.c">mail</a><img src="https://example.org/p.png" alt="p" width="20">'
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline"><pre>a &lt; b</pre>'
    )
    cleaned, removed = sanitize_html(html)
    for kept in ("<h2>Title</h2>", "<b>bold</b>", "<code>x</code>", "<li>one</li>",
                 'href="https://example.org/a?b=1"', 'href="#sec"', 'href="mailto:a@b.c"',
                 'src="https://example.org/p.png"', 'src="data:image/png;base64,iVBORw0KGgo="',
                 'width="20"', "<pre>a &lt; b</pre>", 'rel="noopener noreferrer"'):
        assert kept in cleaned, kept
    assert removed == []


def test_the_note_names_what_was_removed() -> None:
    _, removed = sanitize_html(
        '<script>x</script><iframe></iframe><img src=x onerror=y><a href="javascript:z">a</a>'
    )
    assert removed == ["<iframe>", "<script>", "javascript: URLs", "onerror="]


def test_markdown_is_rendered_and_sanitised() -> None:
    markdown = (
        "# Results\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n**bold** ~~old~~ $x_1 * y_2$\n\n"
        "<script>alert(1)</script>\n\n[bad](javascript:alert(1)) [good](https://example.org)\n\n"
        '<img src="x" onerror="alert(1)">\n\n```\n<b>code</b>\n```\n'
    )
    html, removed = html_from_markdown(markdown)
    assert "<h1>Results</h1>" in html
    assert re.search(r"<td>1</td>\s*<td>2</td>", html)
    assert "<strong>bold</strong>" in html and "<del>old</del>" in html
    assert "x_1 * y_2" in html  # math stays text for MathJax, not emphasis
    assert 'href="https://example.org"' in html
    assert "&lt;b&gt;code&lt;/b&gt;" in html
    assert not ACTIVE.search(html), html
    assert "<script>" in removed


@pytest.mark.parametrize(
    ("tex", "command"),
    [
        (r"$\frac{a}{b} + \sqrt{2}$", None),
        (r"\begin{align} x &= 1 \\ y &= \textbf{2} \end{align}", None),
        (r"$\href{javascript:alert(1)}{x}$", r"\href"),
        (r"$\style{position:fixed}{x}$", r"\style"),
        (r"$\require{extension}$", r"\require"),
        (r"$\class{jp-Dialog}{x}$", r"\class"),
        (r"$\let\foo\href \foo{javascript:x}{y}$", r"\href"),
        (r"$\hrefx$", None),  # another command, only starting like one
    ],
)
def test_latex_commands_that_reach_the_page_are_found(tex: str, command: str | None) -> None:
    assert unsafe_latex(tex) == command


@pytest.mark.parametrize(
    ("markdown", "plain"),
    [
        ("# Title\n\n**bold**, *it*, `code`, a [link](https://example.org) and a list:\n\n"
         "- one\n- two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n", True),
        ("![plot](https://example.org/p.png) [top](#top) [mail](mailto:a@b.c)", True),
        ("$\\sqrt{2}$ and $$E = mc^2$$", True),
        ("[x](javascript:alert(1))", False),
        ("[x](JaVa\tScRiPt:alert(1))", False),
        ("[x](/logout)", False),
        ("![x](/api/shutdown)", False),
        ("![x](http://example.org/p.png)", False),
        ("[x][r]\n\n[r]: vbscript:msgbox", False),
        ("[x](&#106;avascript:alert(1))", False),
        ("<b>raw html</b>", False),
        ("<https://autolink>", False),
        ("$\\href{javascript:x}{y}$", False),
        ("see data: the numbers", False),  # conservative: converted, still shown
    ],
)
def test_plain_markdown_goes_as_it_is_only_when_nothing_could_act(
    markdown: str, plain: bool
) -> None:
    assert plain_markdown(markdown) is plain
