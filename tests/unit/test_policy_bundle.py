"""OutputPolicy: what a display item from a container becomes, trusted or not."""

from __future__ import annotations

import base64
import io

import pytest
from cellbox.kernel.policy import OutputPolicy, PolicyLimits, trust_note
from PIL import Image


def png_bytes(size: tuple[int, int] = (4, 3)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, "PNG")
    return out.getvalue()


def jpeg_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "JPEG")
    return out.getvalue()


POLICY = OutputPolicy()
TRUSTED = OutputPolicy(trusted=True)


def test_images_pass_checked_and_base64_encoded() -> None:
    for data, mime in ((png_bytes(), "image/png"), (jpeg_bytes(), "image/jpeg")):
        verdict = POLICY.file(data, mime)
        assert base64.b64decode(verdict.data[mime]) == data
        assert verdict.data["text/plain"].startswith(f"<{mime[6:].upper()} image")
        assert verdict.notes == [] and not verdict.trusted


def test_an_image_that_is_not_what_it_claims_is_dropped_with_a_note() -> None:
    verdict = POLICY.file(b"<script>alert(1)</script>", "image/png")
    assert verdict.data == {}
    assert verdict.notes == ["[cellbox] dropped image/png from the container: not a PNG image "
                             "(no PNG signature)"]
    assert TRUSTED.file(b"<script>", "image/jpeg").data == {}  # trust does not skip checks


def test_html_is_sanitised_and_the_note_says_what_went() -> None:
    verdict = POLICY.file(b"<b>ok</b><script>alert(1)</script>", "text/html")
    assert verdict.data == {"text/html": "<b>ok</b>", "text/plain": "<text/html>"}
    assert len(verdict.notes) == 1 and "removed <script>" in verdict.notes[0]
    assert "--trust-output" in verdict.notes[0]


def test_markdown_becomes_sanitised_html_with_its_source_as_text() -> None:
    verdict = POLICY.file(b"**hi** <img src=x onerror=alert(1)>", "text/markdown")
    assert "<strong>hi</strong>" in verdict.data["text/html"]
    assert "onerror" not in verdict.data["text/html"]
    assert verdict.data["text/plain"] == "**hi** <img src=x onerror=alert(1)>"
    assert "text/markdown" not in verdict.data


def test_plain_markdown_goes_as_markdown() -> None:
    verdict = POLICY.file(b"# Title\n\n**bold** [x](https://example.org)", "text/markdown")
    assert verdict.data == {"text/markdown": "# Title\n\n**bold** [x](https://example.org)",
                            "text/plain": "# Title\n\n**bold** [x](https://example.org)"}
    assert verdict.notes == []


def test_latex_that_reaches_the_page_is_shown_as_text() -> None:
    assert POLICY.bundle({"text/latex": r"$\sqrt{2}$"}).data["text/latex"] == r"$\sqrt{2}$"
    verdict = POLICY.bundle({"text/latex": r"$\href{javascript:x}{y}$"})
    assert verdict.data == {"text/plain": r"$\href{javascript:x}{y}$"}
    assert verdict.notes == [r"[cellbox] text/latex from the container shown as text: it uses "
                             r"\href"]


def test_svg_is_cleaned() -> None:
    verdict = POLICY.file(b'<svg xmlns="http://www.w3.org/2000/svg"><script>x</script>'
                          b'<circle r="1"/></svg>', "image/svg+xml")
    assert verdict.data["image/svg+xml"] == (
        '<svg xmlns="http://www.w3.org/2000/svg"><circle r="1"></circle></svg>'
    )
    assert "removed <script>" in verdict.notes[0]
    assert POLICY.file(b"<html/>", "image/svg+xml").data == {}


@pytest.mark.parametrize(
    "mime",
    ["application/javascript", "text/javascript", "application/vnd.jupyter.widget-view+json",
     "application/vnd.jupyter.widget-state+json", "application/x-evil", "text/x-unknown"],
)
def test_scripts_widgets_and_unknown_types_are_dropped_with_a_note(mime: str) -> None:
    verdict = POLICY.bundle({mime: "alert(1)" if "json" not in mime else {"model_id": "x"}})
    assert verdict.data == {}
    assert len(verdict.notes) == 1 and mime in verdict.notes[0]


def test_a_bundle_keeps_what_is_allowed_and_only_safe_metadata() -> None:
    png = base64.b64encode(png_bytes()).decode()
    verdict = POLICY.bundle(
        {"image/png": png, "text/plain": "fig\x1b]0;title\x07", "application/javascript": "x",
         "text/html": "<i>x</i><iframe></iframe>"},
        {"image/png": {"width": 40, "height": "<script>"}, "text/html": {"isolated": False},
         "image/svg+xml": {"unconfined": True}},
    )
    assert set(verdict.data) == {"image/png", "text/plain", "text/html"}
    assert verdict.data["text/plain"] == "fig"
    assert verdict.data["text/html"] == "<i>x</i>"
    assert verdict.metadata == {"image/png": {"width": 40}}
    assert len(verdict.notes) == 2


def test_base64_that_is_not_is_dropped() -> None:
    verdict = POLICY.bundle({"image/png": "not base64 !!"})
    assert verdict.data == {} and "not base64" in verdict.notes[0]


def test_an_item_over_the_cap_is_dropped_with_a_note() -> None:
    small = OutputPolicy(limits=PolicyLimits(item_bytes=100))
    verdict = small.file(b"x" * 101, "text/plain")
    assert verdict.data == {}
    assert "101 bytes, more than the limit of 100 bytes" in verdict.notes[0]
    assert small.bundle({"image/png": base64.b64encode(b"\x89PNG" + b"0" * 200).decode()}).data \
        == {}


def test_invalid_utf8_and_json_are_dropped() -> None:
    assert POLICY.file(b"\xff\xfe", "text/html").notes[0].endswith("not UTF-8")
    assert "not valid JSON" in POLICY.file(b"{oops", "application/json").notes[0]
    assert POLICY.file(b'{"a": 1}', "application/json").data["application/json"] == {"a": 1}


def test_trusted_output_passes_markup_and_scripts_untouched_and_says_so() -> None:
    html = "<b>x</b><script>alert(1)</script>"
    verdict = TRUSTED.file(html.encode(), "text/html")
    assert verdict.data["text/html"] == html and verdict.trusted and verdict.notes == []
    verdict = TRUSTED.bundle({"application/javascript": "alert(1)", "text/plain": "js"})
    assert verdict.data == {"application/javascript": "alert(1)", "text/plain": "js"}
    assert verdict.trusted
    assert TRUSTED.file(b"# md", "text/markdown").data["text/markdown"] == "# md"
    assert "trust-output is on for box" in trust_note("box")


def test_trust_output_is_a_container_option_that_does_not_reshape_the_container() -> None:
    from cellbox.kernel.magics import ContainerMagic, parse_cell

    trusted = parse_cell("%container myimage --trust-output --memory 64m\necho hi").magics[0]
    plain = parse_cell("%container myimage --memory 64m").magics[0]
    assert isinstance(trusted, ContainerMagic) and isinstance(plain, ContainerMagic)
    assert trusted.spec.trust_output and not plain.spec.trust_output
    assert trusted.spec.identity() == plain.spec.identity()  # same container, reused
