import base64

from tftransfer.report.format import Figure, Heading, Paragraph, Table, to_html, to_markdown

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
                       "+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _blocks():
    return [Heading("Title", 1), Paragraph("a < b"), Table(["k", "v"], [("x|y", 0.123456),
                                                                       ("none", None)]),
            Figure("f/one.png", "One")]


def test_markdown_renders_every_block():
    text = to_markdown(_blocks())
    assert text.startswith("# Title\n")
    assert "| k | v |\n|---|---|\n| x\\|y | 0.1235 |\n| none | – |" in text
    assert "![One](f/one.png)" in text


def test_html_escapes_text_and_embeds_figures(tmp_path):
    (tmp_path / "f").mkdir()
    (tmp_path / "f" / "one.png").write_bytes(PNG)
    page = to_html(_blocks(), str(tmp_path), "T")
    assert "<p>a &lt; b</p>" in page and "<td>0.1235</td>" in page
    assert f"data:image/png;base64,{base64.b64encode(PNG).decode()}" in page
