"""Markdown rendering: GFM features survive, executable content from a hostile model never does."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest
from django.utils.safestring import SafeString

from django_ai_chat.markdown import pygments_css, render_markdown

FORBIDDEN_TAGS = {
    "script", "style", "iframe", "frame", "frameset", "object", "embed", "applet", "svg", "math",
    "form", "input-image", "img", "video", "audio", "source", "meta", "link", "base", "template",
    "noscript", "textarea", "xmp", "button", "select", "option", "marquee", "isindex", "details",
}  # fmt: skip
SAFE_SCHEMES = {"http", "https", "mailto"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]


@dataclass
class Collector(HTMLParser):
    elements: list[Element] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs)))


def elements(html: str) -> list[Element]:
    collector = Collector()
    collector.feed(html)
    collector.close()
    return collector.elements


def scheme(url: str) -> str | None:
    # Browsers ignore whitespace and control characters inside a scheme: "jav\tascript:".
    cleaned = re.sub(r"[\x00-\x20]", "", url).lower()
    match = re.match(r"([a-z][a-z0-9+.-]*):", cleaned)
    return match.group(1) if match else None


def assert_inert(html: str) -> None:
    """No element, attribute or URL in `html` can run script or load anything by itself."""
    assert "<script" not in html.lower()
    for element in elements(html):
        assert element.tag not in FORBIDDEN_TAGS, element
        for name, value in element.attrs.items():
            assert not name.startswith("on"), element
            assert name not in {"style", "srcdoc", "src", "formaction", "xlink:href", "action"}, (
                element
            )
            if name == "href" and value:
                assert scheme(value) in SAFE_SCHEMES | {None}, element
        if element.tag == "a" and (element.attrs.get("href") or "#").startswith("#") is False:
            assert element.attrs.get("target") == "_blank", element
            assert element.attrs.get("rel") == "noopener noreferrer nofollow", element


HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=https://evil.example/xss.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<IMG SRC=\"javascript:alert('XSS');\">",
    "<svg/onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<svg><a xlink:href="javascript:alert(1)"><text x="20" y="20">XSS</text></a></svg>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<iframe src="javascript:alert(1)"></iframe>',
    '<iframe srcdoc="<script>alert(1)</script>"></iframe>',
    "<style>body{background:url('javascript:alert(1)')}</style>",
    '<div style="background-image:url(javascript:alert(1))">x</div>',
    "<body onload=alert(1)>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](javascript&#58;alert(1))",
    "[click](&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1))",
    "[click](java\tscript:alert(1))",
    "[click](%6A%61%76%61%73%63%72%69%70%74:alert(1))",
    "[click](vbscript:msgbox(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    '[click](https://ok.example "title\\" onmouseover=\\"alert(1))',
    "![x](javascript:alert(1))",
    '![x](https://ok.example/a.png" onerror="alert(1))',
    "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
    "<javascript:alert(1)>",
    '<https://ok.example/" onclick="alert(1)>',
    "[ref]\n\n[ref]: javascript:alert(1)",
    "Note[^x]\n\n[^x]: <script>alert(1)</script> [y](javascript:alert(1))",
    "```html\n<script>alert(1)</script>\n```",
    '```"><script>alert(1)</script>\ncode\n```',
    "`<img src=x onerror=alert(1)>`",
    "<details open ontoggle=alert(1)>",
    "<form action=javascript:alert(1)><button>go</button></form>",
    "<object data=javascript:alert(1)>",
    "<embed src=javascript:alert(1)>",
    '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
    '<base href="javascript:alert(1)//">',
    "<!--<img src=--><img src=x onerror=alert(1)//-->",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<<script>script>alert(1)<</script>/script>",
    "<scr<script>ipt>alert(1)</script>",
    "| a |\n|---|\n| <script>alert(1)</script> |",
    "- [ ] <img src=x onerror=alert(1)>",
    "~~<iframe src=https://evil.example>~~",
    "> <a href='javascript:alert(1)'>quote</a>",
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "<textarea><script>alert(1)</script></textarea>",
    'www.example.com/"onmouseover="alert(1)',
]


@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_markdown_renders_inert(payload: str) -> None:
    html = render_markdown(payload)
    assert isinstance(html, SafeString)
    assert_inert(html)


def test_hostile_corpus_is_large_enough() -> None:
    assert len(set(HOSTILE)) >= 25


def test_hostile_payloads_combined_render_inert() -> None:
    assert_inert(render_markdown("\n\n".join(HOSTILE)))


def test_raw_html_is_shown_as_text() -> None:
    html = render_markdown("Use <b>bold</b> and <script>alert(1)</script>")
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;script&gt;" in html
    assert [e.tag for e in elements(html)] == ["p"]


def test_unsafe_link_keeps_its_text_but_not_the_link() -> None:
    html = render_markdown("[click me](javascript:alert(1))")
    assert "click me" in html
    assert not [e for e in elements(html) if e.tag == "a"]


def test_gfm_features_render() -> None:
    html = render_markdown(
        "| Name | Qty |\n|:-----|----:|\n| pear | 3 |\n\n"
        "~~old~~ new, see https://example.com and www.example.org\n\n"
        "- [x] done\n- [ ] todo\n\n"
        "A claim[^1].\n\n"
        "```python\ndef add(a, b):\n    return a + b\n```\n\n"
        "[^1]: The source.\n"
    )
    assert_inert(html)
    found = elements(html)
    tags = [e.tag for e in found]
    assert {"table", "thead", "tbody", "th", "td", "del", "section", "sup"} <= set(tags)
    assert '<th align="right">Qty</th>' in html
    assert "<del>old</del>" in html
    checkboxes = [e for e in found if e.tag == "input"]
    assert [("checked" in c.attrs, c.attrs.get("type")) for c in checkboxes] == [
        (True, "checkbox"),
        (False, "checkbox"),
    ]
    assert all("disabled" in c.attrs for c in checkboxes)
    links = {e.attrs["href"]: e.attrs for e in found if e.tag == "a"}
    assert links["https://example.com"]["target"] == "_blank"
    assert links["https://example.com"]["rel"] == "noopener noreferrer nofollow"
    assert "http://www.example.org" in links
    # Footnote: the reference and the note point at each other and stay in the page.
    ref = next(href for href in links if href.startswith("#fn-"))
    back = next(href for href in links if href.startswith("#fnref-"))
    ids = {e.attrs.get("id") for e in found}
    assert ref[1:] in ids
    assert back[1:] in ids
    assert "target" not in links[ref]
    # Highlighted Python.
    assert '<div class="highlight" data-lang="python">' in html
    assert '<span class="k">def</span>' in html
    assert '<span class="k">return</span>' in html


def test_footnote_ids_differ_between_messages() -> None:
    first = render_markdown("One[^1].\n\n[^1]: a")
    second = render_markdown("Two[^1].\n\n[^1]: b")
    ids = lambda html: {e.attrs["id"] for e in elements(html) if e.attrs.get("id")}  # noqa: E731
    assert ids(first)
    assert not ids(first) & ids(second)


def test_images_become_links() -> None:
    html = render_markdown('![a chart](https://example.com/c.png "Sales")')
    assert [(e.tag, e.attrs.get("href")) for e in elements(html)] == [
        ("p", None),
        ("a", "https://example.com/c.png"),
    ]
    assert ">a chart</a>" in html


def test_code_blocks_escape_html_and_tolerate_unknown_languages() -> None:
    html = render_markdown("```nosuchlang\n<b>x</b> & y\n```\n\n```\nplain <i>\n```")
    assert_inert(html)
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in html
    assert "plain &lt;i&gt;" in html
    assert html.count('<div class="highlight"') == 2


def test_highlighted_code_keeps_html_escaped() -> None:
    html = render_markdown('```python\nprint("<script>alert(1)</script>")\n```')
    assert_inert(html)
    assert "&lt;script&gt;" in html


def test_empty_text_renders_empty() -> None:
    assert render_markdown("") == ""


def test_pygments_css_is_scoped() -> None:
    css = pygments_css()
    rules = [line for line in css.splitlines() if line.strip()]
    assert rules
    assert all(line.startswith(".highlight") for line in rules)
    assert ".highlight .k " in css


def test_pygments_css_dark_mode() -> None:
    css = pygments_css("default", "monokai")
    assert "@media (prefers-color-scheme: dark)" in css
    light, dark = css.split("@media")
    assert "#272822" in dark  # monokai's background
    assert "#272822" not in light
    scoped = pygments_css("default", "monokai", dark_selector='[data-theme="dark"]')
    assert '[data-theme="dark"] .highlight .k ' in scoped
    assert "@media" not in scoped


@pytest.mark.parametrize(
    "html",
    [
        "<script>alert(1)</script>",
        '<p onclick="alert(1)">x</p>',
        '<a href=" jav&#x09;ascript:alert(1)">x</a>',
        '<a href="data:text/html,x">x</a>',
        '<a href="https://ok.example">no target</a>',
        '<img src="https://ok.example/x.png">',
        '<iframe srcdoc="x"></iframe>',
    ],
)
def test_the_inertness_check_catches_executable_html(html: str) -> None:
    # Guards the guard: the corpus test above is only as good as this check.
    with pytest.raises(AssertionError):
        assert_inert(html)
