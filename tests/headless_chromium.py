"""An HTML file as a real browser renders it: Debian's Chromium, headless, opens a wrapper page
whose iframe holds the file; once the file has loaded, the wrapper's script writes what the
browser made of it (its images, its tables) into the wrapper's DOM, which `--dump-dom` prints.
The file itself is opened unchanged, by its own file:// URL."""
from __future__ import annotations

import html
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import tempfile

import pytest

CHROMIUM = "chromium"  # Debian's package of that name; .ci/install installs it
_VERDICT = re.compile(r'<pre id="verdict">(.*?)</pre>', re.S)
_WRAPPER = """<!doctype html><html><body><iframe id="page" src="{url}"></iframe><script>
function meanRgba(image) {{  // what was drawn: a truncated PNG leaves transparent rows
  if (!image.naturalWidth) return null;
  const canvas = document.createElement("canvas");
  [canvas.width, canvas.height] = [image.naturalWidth, image.naturalHeight];
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
  const sums = [0, 0, 0, 0];
  pixels.forEach((value, i) => {{ sums[i % 4] += value; }});
  return sums.map(sum => sum / (pixels.length / 4));
}}
document.getElementById("page").addEventListener("load", event => {{
  const page = event.target.contentDocument;
  const verdict = page === null ? {{error: "Chromium kept the page from the wrapper"}} : {{
    images: [...page.images].map(image => ({{alt: image.alt, complete: image.complete,
      width: image.naturalWidth, height: image.naturalHeight, rgba: meanRgba(image)}})),
    tables: [...page.querySelectorAll("table")].map(table =>
      [...table.querySelectorAll("th")].map(cell => cell.textContent))}};
  const out = document.createElement("pre");
  out.id = "verdict";
  out.textContent = JSON.stringify(verdict);
  document.body.append(out);
}});
</script></body></html>"""


def chromium_or_skip() -> str:
    """Chromium's path. Without it a test fails under CI (.ci/install installs it) and is
    skipped elsewhere."""
    path = shutil.which(CHROMIUM)
    if path is None:
        message = f"no `{CHROMIUM}` on PATH: `bash .ci/install` installs Debian's package"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def _dump_dom(chromium: str, url: str, profile: str, timeout: float) -> str:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start;
    # --allow-file-access-from-files: lets the file:// wrapper read the file:// iframe.
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--allow-file-access-from-files", f"--user-data-dir={profile}",
               "--dump-dom", url]
    # Its own process group: a timeout ends the renderer and GPU children too.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"Chromium did not render {url} within {timeout} s")
    if process.returncode != 0:
        raise AssertionError(f"Chromium exited with {process.returncode}: {err[-2000:]}")
    return out


def render(html_path: str, timeout: float = 120) -> dict:
    """What Chromium loaded from `html_path`, in document order: {"images": [{alt, complete,
    width, height, rgba}], "tables": [[header cell text, ...], ...]}, `rgba` the mean red,
    green, blue and alpha of the image as Chromium drew it on a canvas (None if not drawn)."""
    chromium = chromium_or_skip()
    page_url = pathlib.Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="chromium-") as folder:
        wrapper = pathlib.Path(folder, "wrapper.html")
        wrapper.write_text(_WRAPPER.format(url=html.escape(page_url)), encoding="utf-8")
        dom = _dump_dom(chromium, wrapper.as_uri(), os.path.join(folder, "profile"), timeout)
    found = _VERDICT.search(dom)
    assert found, f"the wrapper's script wrote no verdict; Chromium's DOM: {dom[-2000:]}"
    verdict = json.loads(html.unescape(found.group(1)))
    assert "error" not in verdict, verdict["error"]
    return verdict
