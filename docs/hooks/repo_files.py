"""MkDocs hook: put the repository's README and notebooks on the site, and make repo links work there.

Why a hook: MkDocs only reads ``docs_dir``, but the notebooks live in ``notebooks/`` (where the
notebook tests execute them and GitHub shows them) and the README at the root. Copying them into
``docs/`` would make two copies that drift; a ``docs/notebooks`` symlink breaks on Windows checkouts
and zip downloads. So this hook adds them to MkDocs's file list as files read from their real
place, every build, however many notebooks there are:

- ``notebooks/NN_topic.ipynb`` -> site page ``notebooks/NN_topic.ipynb`` (mkdocs-jupyter renders it,
  without executing it: the notebooks are committed with their outputs);
- ``README.md`` -> site page ``readme.md``.

The pages are written for GitHub, so they link to repository paths (``../README.md``,
``../notebooks/04_self_attention.ipynb``, ``../minitransformer/nn/attention.py``). MkDocs would
report those as broken (they leave ``docs_dir``), so every relative link is resolved from the
file's real location and rewritten to what the site has (in the Markdown of pages, and in the
rendered HTML of notebooks, which MkDocs does not check):

- a file in ``docs/``, the README or a notebook -> its page;
- a package source file (``minitransformer/nn/attention.py``) -> its section of the API reference
  (the page with a ``::: minitransformer.nn.attention`` line), which shows the source;
- anything else -> ``repo_url``/blob/main/PATH when ``repo_url`` is set; otherwise the link is kept
  and a warning names it, so ``mkdocs build --strict`` fails. A link to a missing file warns too.
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File
from mkdocs.utils import get_relative_url

log = logging.getLogger("mkdocs.hooks.repo_files")

NOTEBOOKS_DIR = "notebooks"
README_PAGE = "readme.md"
# Code (fenced blocks, inline spans) is matched first and left alone; then ](target "title").
_MD_LINK = re.compile(r"(```.*?```|`[^`\n]*`)|(\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))", re.S)
_HTML_HREF = re.compile(r'(href=")([^"]+)(")')
_API_DIRECTIVE = re.compile(r"^:::\s+(minitransformer(?:\.\w+)*)\s*$", re.M)

_api_pages: dict[str, str] = {}  # module name -> src_uri of the API page documenting it


def _root(config) -> Path:
    return Path(config.config_file_path).resolve().parent


def repo_files(root: Path) -> dict[str, Path]:
    """Site src_uri -> real path of every repository file this hook publishes."""
    files = {f"{NOTEBOOKS_DIR}/{p.name}": p for p in sorted((root / NOTEBOOKS_DIR).glob("*.ipynb"))}
    if (root / "README.md").is_file():
        files[README_PAGE] = root / "README.md"
    return files


# Runs before mkdocs-jupyter's on_files (priority 0), which must see the notebooks to render them.
@event_priority(100)
def on_files(files, config):
    root = _root(config)
    for src_uri, path in repo_files(root).items():
        if src_uri.startswith(NOTEBOOKS_DIR + "/"):
            # A plain File whose src_dir is the repository root: mkdocs-jupyter wraps it in a class
            # that reads abs_src_path from src_dir, so File.generated (src_dir None) would not do.
            files.append(File(src_uri, src_dir=str(root), dest_dir=config.site_dir,
                              use_directory_urls=config.use_directory_urls))
        else:
            files.append(File.generated(config, src_uri, abs_src_path=str(path)))
    _api_pages.clear()
    for f in files.documentation_pages():
        if f.src_uri.startswith("api/") and f.src_uri.endswith(".md"):
            for module in _API_DIRECTIVE.findall(f.content_string):
                _api_pages.setdefault(module, f.src_uri)
    return files


def _resolve(url: str, page, config) -> tuple[str, str] | str | None:
    """Where a relative link of ``page`` to ``url`` goes on the site.

    Returns (src_uri, anchor) of a site page, an absolute URL (repo_url), or None to keep the link
    as it is (an external or in-docs link; or a broken one, after a warning).
    """
    if "://" in url or url.startswith(("#", "/", "mailto:", "data:")):
        return None
    root, docs_dir = _root(config), Path(config.docs_dir).resolve()
    here = Path(page.file.abs_src_path).resolve().parent
    path, _, anchor = url.partition("#")
    target = (here / path).resolve()
    if here.is_relative_to(docs_dir) and target.is_relative_to(docs_dir):
        return None  # an ordinary docs link: MkDocs checks it
    if not target.is_relative_to(root) or not target.exists():
        log.warning(f"{page.file.src_uri} links to '{url}', which does not exist")
        return None
    if target.is_relative_to(docs_dir):
        return target.relative_to(docs_dir).as_posix(), anchor
    published = {p.resolve(): uri for uri, p in repo_files(root).items()}
    if target in published:
        return published[target], anchor
    rel = target.relative_to(root)
    if rel.parts[0] == "minitransformer":
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join(parts)
        if module in _api_pages:
            return _api_pages[module], anchor or module
        inside = [uri for name, uri in _api_pages.items() if name.startswith(module + ".")]
        if inside:  # a package documented module by module: the page of its first module
            return inside[0], anchor
    if config.repo_url:
        return f"{config.repo_url.rstrip('/')}/blob/main/{rel.as_posix()}" + (f"#{anchor}" if anchor else "")
    log.warning(f"{page.file.src_uri} links to '{url}' ({rel.as_posix()}), which is not on the site; "
                "set repo_url in mkdocs.yml, or document the module in an API page")
    return None


def on_page_markdown(markdown, page, config, files):
    """Markdown pages: rewrite repository links to site pages (MkDocs then checks and converts them)."""
    if not page.file.src_uri.endswith(".md"):
        return markdown  # a notebook: its links are rewritten in its HTML, below

    def rewrite(match: re.Match) -> str:
        if match.group(1):
            return match.group(1)  # code
        found = _resolve(match.group(3), page, config)
        if found is None:
            return match.group(0)
        if isinstance(found, tuple):
            src_uri, anchor = found
            found = posixpath.relpath(src_uri, posixpath.dirname(page.file.src_uri) or ".")
            found += f"#{anchor}" if anchor else ""
        return match.group(2) + found + match.group(4)

    return _MD_LINK.sub(rewrite, markdown)


def on_page_content(html, page, config, files):
    """Rendered notebooks: rewrite their relative links to the URLs of site pages."""
    if not page.file.src_uri.endswith(".ipynb"):
        return html

    def rewrite(match: re.Match) -> str:
        found = _resolve(match.group(2), page, config)
        if found is None:
            return match.group(0)
        if isinstance(found, tuple):
            src_uri, anchor = found
            target = files.get_file_from_path(src_uri)
            if target is None:
                log.warning(f"{page.file.src_uri} links to '{match.group(2)}', whose page {src_uri} is not built")
                return match.group(0)
            found = get_relative_url(target.url, page.file.url) + (f"#{anchor}" if anchor else "")
        return match.group(1) + found + match.group(3)

    return _HTML_HREF.sub(rewrite, html)


def on_serve(server, config, builder):
    """``mkdocs serve`` rebuilds when a notebook or the README changes."""
    root = _root(config)
    server.watch(str(root / NOTEBOOKS_DIR))
    server.watch(str(root / "README.md"))
    return server
