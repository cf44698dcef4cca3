"""Build the course's website: `make site` (or `python book/build.py`).

It copies the chapters (chapters/*.ipynb, in order) and the exercise templates (exercises/*.ipynb) into
book/_build/src/, adds a "Run it yourself" box to every page, and has Jupyter Book run the chapters in
Triton's interpreter (TTC_WORLD=interpreter) and write the pages to book/_build/html/. The videos that
the chapters show with <video> tags are copied beside their pages. Only book/_build/ is written (it is
git-ignored); chapters/, exercises/ and my-work/ are read, never written, and solutions/ is not read.

Run outputs are cached in book/_build/.jupyter_cache, keyed by each notebook's code: a second build
runs only the chapters whose code changed. `--clean` starts from nothing. The box's `git clone` names
the repository's `origin` remote, or SITE_REPO_URL when set.
"""
from __future__ import annotations

import argparse
import filecmp
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
BUILD = BOOK / "_build"
SRC = BUILD / "src"
HTML = BUILD / "html"

BOX_CLASS = "run-it-yourself"
# raw HTML in a markdown cell that points at a file: <video src=...>, <source src=...>, <img src=...>
RAW_MEDIA = re.compile(r'<(?:video|source|img)\b[^>]*?\bsrc="([^"]+)"', re.I)
# a code cell that shows an ipywidgets control (kernels.widgets.*_widget(), interact)
WIDGET = re.compile(r"\b\w*_widget\(|\binteract(?:ive)?\(")
WIDGET_NOTE = ("*The widget above answers only in a running notebook, where Python redraws it; on this page "
               "it stands still. Run the notebook to use it.*")


def _tracked(paths) -> list[Path]:
    """Only the notebooks the course's git checkout tracks (not a "-Copy1" duplicate or a scratch file
    someone saved beside them); every match where there is no git checkout."""
    import subprocess

    paths = sorted(paths)
    try:
        out = subprocess.run(["git", "ls-files", "-z", "chapters", "exercises"], cwd=ROOT, capture_output=True,
                             check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return paths
    tracked = {ROOT / f for f in out.decode().split("\0") if f}
    return [p for p in paths if p in tracked] if tracked else paths


def chapters() -> list[Path]:
    return _tracked((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def exercises() -> list[Path]:
    return _tracked((ROOT / "exercises").glob("ch[0-9][0-9]_*.ipynb"))


def title(nb) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    raise ValueError("a notebook without a # title")


def readme_commands() -> str:
    """The README's two commands, as it writes them (the bash block under '## Two commands')."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"```bash\n(.*?)```", section, re.S)
    if not m:
        raise SystemExit("README.md: no ```bash block under '## Two commands'")
    return m.group(1).rstrip("\n")


def repo_url() -> str:
    """SITE_REPO_URL, or the `origin` remote when it is a network address (any user:password@ dropped);
    a placeholder otherwise (a local path means nothing to a reader)."""
    url = os.environ.get("SITE_REPO_URL", "").strip()
    if not url:
        got = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"],
                             capture_output=True, text=True)
        url = got.stdout.strip() if got.returncode == 0 else ""
        parts = urlsplit(url)
        if parts.scheme in ("https", "http") and parts.hostname:
            url = parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")).geturl()
        elif not re.fullmatch(r"git@[\w.-]+:[\w./-]+", url):
            url = ""
    return url or "<repository-url>"


def box(open_this: str, after: str) -> str:
    return (
        f":::{{admonition}} Run it yourself\n:class: tip {BOX_CLASS}\n\n"
        "Clone the course and run its two commands (on Linux with Python ≥ 3.10 and `make`; "
        "on Windows use WSL2, on macOS a Linux container or VM):\n\n"
        f"```bash\ngit clone {repo_url()} tiles-to-tensor-cores\ncd tiles-to-tensor-cores\n"
        f"{readme_commands()}\n```\n\n"
        f"Then open **`{open_this}`** in JupyterLab. {after}\n:::\n"
    )


def chapter_box(path: Path, exercise_pages: list[Path]) -> str:
    after = ("Run it from the top: without a GPU every kernel runs in Triton's interpreter on the CPU, as it "
             "did when the outputs on this page were computed, and the GPU timings come from the course's "
             "records in `results/`; with an NVIDIA GPU the kernels compile and run on it.")
    if exercise_pages:
        links = ", ".join(f"[{p.stem}](../exercises/{p.name})" for p in exercise_pages)
        after += f" This chapter's exercise: {links}."
    return box(f"chapters/{path.name}", after)


def exercise_box(path: Path) -> str:
    after = (f"`make lab` copies this exercise there, into `my-work/`, your own folder, which a new version of "
             f"the course never overwrites. Write your code where it says `# YOUR CODE HERE`, run the check "
             f"cell, and grade the whole notebook with `make grade NB=my-work/{path.name}`.")
    return box(f"my-work/{path.name}", after)


def write_if_changed(path: Path, data: bytes) -> None:
    """Unchanged files keep their time stamps, so Sphinx rebuilds only the pages that changed."""
    if path.exists() and path.read_bytes() == data:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# a Markdown link or image to a relative path: [text](path) or ![alt](path)
HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
MD_LINK = re.compile(r"\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")
NEVER_ON_THE_SITE = ("solutions", "my-work")


def publishable(src: Path, target: str, what: str = "links to") -> Path:
    """The repository path a notebook's link or media reference ``target`` names, relative to the
    repository, if the site may publish it; stops the build otherwise: a path outside the course, in
    solutions/ or my-work/, or under any hidden folder or file (.git, .venv, ...)."""
    file = (src.parent / target).resolve()
    if ROOT not in file.parents:
        raise SystemExit(f"{src.relative_to(ROOT)} {what} {target}, outside the course")
    rel = file.relative_to(ROOT)
    if rel.parts[0] in NEVER_ON_THE_SITE or any(part.startswith(".") for part in rel.parts):
        raise SystemExit(f"{src.relative_to(ROOT)} {what} {rel}, which the site must not publish")
    return rel


def linked_files(src: Path, markdown: str) -> list[Path]:
    """Repository files (not pages) that a notebook's Markdown links to: the site offers them as downloads,
    so they are copied into the source folder beside the pages. A link into solutions/, my-work/, a
    hidden folder or out of the course stops the build (:func:`publishable`)."""
    found = []
    for target in MD_LINK.findall(HTML_COMMENT.sub("", markdown)):
        path = target.split("#", 1)[0]
        if not path or "://" in target or target.startswith("mailto:"):
            continue
        rel = publishable(src, path)
        if (ROOT / rel).is_file() and rel.suffix not in (".ipynb", ".md"):  # pages are linked, not copied
            found.append(rel)
    return found


def stage_notebook(src: Path, dest: Path, box_text: str) -> tuple[list[str], list[Path]]:
    """Copy one notebook with the box after its title cell; return the files its raw HTML points at and
    the repository files its links point at."""
    nb = nbformat.read(src, as_version=4)
    media, linked = [], []
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown":
            # what the page shows (a comment shows nothing), each checked like a link
            shown = [m for m in RAW_MEDIA.findall(HTML_COMMENT.sub("", cell.source)) if "://" not in m]
            for m in shown:
                publishable(src, m, "shows")
            media += shown
            # the README is the site's front page
            cell.source = re.sub(r"\]\(\.\./README\.md(#[^)]*)?\)", r"](../intro.md\1)", cell.source)
            linked += linked_files(src, cell.source)
    for i in reversed(range(len(nb.cells))):
        if nb.cells[i].cell_type == "code" and WIDGET.search(nb.cells[i].source):
            note = nbformat.v4.new_markdown_cell(WIDGET_NOTE)
            note.id = f"widget-note-{i}"
            nb.cells.insert(i + 1, note)
    first_md = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown")
    cell = nbformat.v4.new_markdown_cell(box_text)
    cell.id = BOX_CLASS  # a fixed id: the same notebook stages to the same bytes
    nb.cells.insert(first_md + 1, cell)
    write_if_changed(dest, nbformat.writes(nb).encode())
    for m in media:
        if not (src.parent / m).is_file():
            raise SystemExit(f"{src.relative_to(ROOT)} shows {m}, which is not in the repository")
    return media, linked


def stage() -> dict[Path, list[str]]:
    """Write book/_build/src/; return {page's folder relative to the site: media files to copy there}."""
    ex_by_chapter: dict[str, list[Path]] = {}
    for p in exercises():
        ex_by_chapter.setdefault(p.name[2:4], []).append(p)
    wanted = {SRC / "_config.yml", SRC / "_toc.yml", SRC / "intro.md"}
    media: dict[Path, list[str]] = {}
    linked: set[Path] = set()
    for p, box_text in [*((p, chapter_box(p, ex_by_chapter.get(p.name[:2], []))) for p in chapters()),
                        *((p, exercise_box(p)) for p in exercises())]:
        dest = SRC / p.parent.name / p.name
        wanted.add(dest)
        shown, links = stage_notebook(p, dest, box_text)
        media.setdefault(Path(p.parent.name), []).extend(shown)
        linked.update(links)
    for rel in linked:
        wanted.add(SRC / rel)
        write_if_changed(SRC / rel, (ROOT / rel).read_bytes())
    # pages no longer in the course (a renamed notebook) leave the source folder
    for old in sorted(SRC.rglob("*"), reverse=True):
        if old.is_file() and old not in wanted:
            old.unlink()
        elif old.is_dir() and not any(old.iterdir()):
            old.rmdir()

    write_if_changed(SRC / "_config.yml", (BOOK / "_config.yml").read_bytes())
    toc = ["format: jb-book", "root: intro", "parts:", "  - caption: Chapters", "    chapters:"]
    toc += [f"      - file: chapters/{p.stem}" for p in chapters()]
    toc += ["  - caption: Exercises", "    chapters:"]
    toc += [f"      - file: exercises/{p.stem}" for p in exercises()]
    write_if_changed(SRC / "_toc.yml", ("\n".join(toc) + "\n").encode())

    rows = []
    for p in chapters():
        line = f"- [{title(nbformat.read(p, as_version=4))}](chapters/{p.name})"
        exs = ex_by_chapter.get(p.name[:2], [])
        if exs:
            line += "; exercise: " + ", ".join(f"[{e.stem}](exercises/{e.name})" for e in exs)
        rows.append(line)
    intro = (BOOK / "intro.md").read_text()
    intro = intro.replace("<!-- chapter list -->", "\n".join(rows))
    intro = intro.replace("<!-- run it yourself -->", box(
        f"chapters/{chapters()[0].name}",
        "`make lab` opens it for you. Work through the chapters in order; each ends with its exercise, "
        "which you do in your own copy in `my-work/`."))
    write_if_changed(SRC / "intro.md", intro.encode())
    return media


def copy_media(media: dict[Path, list[str]]) -> None:
    """The <video> files are raw HTML to Sphinx, which does not copy them: put them beside their pages."""
    for folder, files in media.items():
        for rel in sorted(set(files)):
            src = ROOT / folder / rel
            dest = HTML / folder / rel
            if not dest.exists() or not filecmp.cmp(src, dest, shallow=False):  # a re-rendered video too
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)


def poll_in_slices(slice_s: float = 0.5) -> None:
    """Make the notebook runner's wait for a kernel message re-check the socket every `slice_s` seconds.

    Jupyter Book runs each notebook with nbclient, which waits for the kernel's replies with an asyncio
    poll on a ZeroMQ socket. Now and then (a few runs in a hundred here) that poll misses its wake-up
    although the message has arrived: the cell then waits out its whole timeout, and its output
    messages can be missed. A fresh poll looks at the socket's state first, so polling in short slices
    picks such a message up within `slice_s`.
    """
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = slice_s if deadline is None else max(0.0, min(slice_s, deadline - time.monotonic()))
            if await self.socket.poll(int(left * 1000)):
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty

    AsyncZMQSocketChannel.get_msg = get_msg


def run_jupyter_book(args: list[str]) -> int:
    poll_in_slices()
    from jupyter_book.cli.main import main as jupyter_book

    try:
        jupyter_book.main(args=args, prog_name="jupyter-book", standalone_mode=True)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run-jupyter-book"]:  # the child process below
        return run_jupyter_book(argv[1:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clean", action="store_true", help="remove book/_build first (its run cache too)")
    args = ap.parse_args(argv)
    if args.clean and BUILD.exists():
        shutil.rmtree(BUILD)
    start = time.time()
    media = stage()
    # the pages, downloads and media of this build: when they differ from the last build's, the HTML is
    # written afresh (the run cache stays), so that nothing of a removed page or file lingers on the site
    manifest = "\n".join(sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*") if p.is_file())
                         + sorted(f"{folder}/{m}" for folder, ms in media.items() for m in set(ms)))
    last = BUILD / "site-manifest.txt"
    if HTML.exists() and (not last.exists() or last.read_text() != manifest):
        shutil.rmtree(HTML)
        shutil.rmtree(BOOK / "_build" / "doctrees", ignore_errors=True)
    env = dict(os.environ)
    env.setdefault("TTC_WORLD", "interpreter")  # the site shows the interpreter's outputs, on any machine
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--run-jupyter-book", "build", str(SRC),
           "--path-output", str(BOOK), "--builder", "html", "--warningiserror", "--keep-going"]
    got = subprocess.run(cmd, env=env, cwd=ROOT)
    if got.returncode != 0:
        print(f"site: jupyter-book failed (exit status {got.returncode})", file=sys.stderr)
        return got.returncode
    copy_media(media)
    last.write_text(manifest)
    print(f"site: {HTML.relative_to(ROOT)}/index.html ({time.time() - start:.0f} s); "
          f"open it in a browser, or `python -m http.server -d {HTML.relative_to(ROOT)}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
