"""The documentation site: every notebook rendered with its saved outputs by mkdocs (mkdocs-jupyter), in strict mode,
and every relative link and image in the built pages pointing at a page or file that exists (mkdocs checks the links
of Markdown pages, not those inside rendered notebooks, so the pages are checked here)."""

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
MKDOCS = str(Path(sys.executable).parent / "mkdocs")
ENV = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [MKDOCS, "build", "--strict", "--config-file", str(config), "--site-dir", str(site)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=600,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    p = build(REPO / "mkdocs.yml", out)
    assert p.returncode == 0, p.stderr[-4000:]
    return out


def test_every_notebook_has_a_page(site):
    for nb in sorted((REPO / "nbs").glob("*.ipynb")):
        page = site / f"{nb.stem}.html"
        assert page.exists(), f"{nb.name} has no page"
    nav = yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]
    listed = re.findall(r"[\w.-]+\.ipynb", json.dumps(nav))
    assert sorted(listed) == sorted(p.name for p in (REPO / "nbs").glob("*.ipynb")), (
        "mkdocs.yml's nav must list every notebook"
    )


class Links(HTMLParser):
    "The href and src attributes of a page's elements (not text that looks like them, as in code)."

    def __init__(self):
        super().__init__()
        self.found = []

    def handle_starttag(self, tag, attrs):
        self.found += [v for k, v in attrs if k in ("href", "src") and v]


def broken_links(site: Path) -> list[str]:
    "Relative links and image sources in the built pages whose target does not exist."
    broken = []
    for page in site.rglob("*.html"):
        parser = Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for href in (h.split("#")[0].split("?")[0] for h in parser.found):
            if not href or re.match(r"^[a-z][a-z0-9+.-]*:|^//", href):
                continue  # anchors, http:, mailto:, data:, ...
            target = (page.parent / href).resolve() if not href.startswith("/") else (site / href.lstrip("/")).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {href}")
    return broken


def test_relative_links_resolve(site):
    broken = broken_links(site)
    assert not broken, "broken links:\n" + "\n".join(broken[:20])


def test_rendered_outputs_and_no_local_paths(site):
    serve = (site / "20_serve.html").read_text(encoding="utf-8")
    assert "<img" in serve or "data:image/png" in serve, "the serving notebook's figures must render"
    for page in site.rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        assert not re.search(r"/work/|/home/\w+/|/tmp/pytest", text), f"a local path in {page.relative_to(site)}"


def test_a_broken_link_is_caught(tmp_path):
    "mkdocs does not check links inside notebooks (mkdocs-jupyter renders them): the link check above does."
    docs = tmp_path / "nbs"
    docs.mkdir()
    nb = json.loads((REPO / "nbs" / "index.ipynb").read_text())
    nb["cells"].append(
        {"cell_type": "markdown", "id": "broken01", "metadata": {}, "source": ["See [the guide](no-such-page.md)."]}
    )
    (docs / "index.ipynb").write_text(json.dumps(nb))
    shutil.copytree(REPO / "nbs" / "images", docs / "images")
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text())
    config.update(docs_dir=str(docs), nav=[{"Home": "index.ipynb"}])
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config))
    p = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert p.returncode == 0, p.stderr[-3000:]
    assert broken_links(tmp_path / "site") == ["index.html -> no-such-page.md"]
