"""The course's website (`make site`, book/build.py): built once per test session, then checked.

Every chapter and exercise has a page with the run-it-yourself box; chapter pages show outputs computed
in Triton's interpreter during the build; every internal link and every image and video on the site
resolves to a file of the build (and a #fragment to an id on its page); no line of a solution leaks
into any file of the site; and the build writes nothing outside book/_build/. The checkers themselves
are shown to fail on a small site with a planted fault of each kind.
"""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "book" / "_build" / "html"
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("ch[0-9][0-9]_*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
# what a learner can read anyway: a solution line found here is no leak
PUBLIC = [*CHAPTERS, *EXERCISES, *sorted((ROOT / "kernels").rglob("*.py")), *sorted((ROOT / "grader").rglob("*.py"))]
TEXT_SUFFIXES = {".html", ".js", ".ipynb", ".txt", ".json", ".md", ".py"}
WATCHED = ("chapters", "exercises", "solutions", "my-work")  # the build reads these, and must not write


# ------------------------------------------------------------------------------------------- checkers
class _Page(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.ids: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "poster") and value is not None:
                self.refs.append((tag, name, value))
            elif name in ("id", "name") and value:
                self.ids.add(value)

    def handle_data(self, data):
        self.text.append(data)


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def _local(value: str) -> bool:
    scheme = urlsplit(value).scheme
    return not scheme and not value.startswith("//")


def broken_refs(site: Path) -> list[str]:
    """Every local href/src/poster of every page: its file must exist in the build, inside it, and a
    #fragment into a page must name an id there."""
    site = site.resolve()
    # the theme's _static/*.html are Jinja templates, not pages
    pages = {p: parse(p) for p in site.rglob("*.html") if "_static" not in p.relative_to(site).parts}
    problems = []
    for path, page in pages.items():
        for tag, attr, value in page.refs:
            if not _local(value) or value in ("", "#"):
                continue
            parts = urlsplit(value)
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            where = f"{path.relative_to(site)}: <{tag} {attr}={value!r}>"
            if site not in target.parents and target != site:
                problems.append(f"{where} points outside the site")
            elif target.is_dir():
                if not (target / "index.html").is_file():
                    problems.append(f"{where}: a folder without index.html")
            elif not target.is_file():
                problems.append(f"{where}: no such file")
            elif tag in ("img", "video", "source") and target.stat().st_size == 0:
                problems.append(f"{where}: an empty file")
            elif parts.fragment and target.suffix == ".html":
                ids = (pages.get(target) or parse(target)).ids
                if unquote(parts.fragment) not in ids:
                    problems.append(f"{where}: no id {parts.fragment!r} on {target.relative_to(site)}")
    return problems


def media_of(page: _Page) -> list[str]:
    return [v for tag, attr, v in page.refs if tag in ("img", "video", "source") and _local(v)]


def _squash(text: str) -> str:
    """Whitespace as one space, and Sphinx's typographic quotes in prose as the plain ones of the source."""
    text = text.translate(str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}))
    return re.sub(r"\s+", " ", text).strip()


def solution_lines() -> list[str]:
    """Code lines between the solutions' BEGIN/END SOLUTION markers that a learner cannot read anywhere
    else in the course (not in an exercise template, a chapter, kernels/ or grader/)."""
    public = _squash(" ".join(p.read_text() for p in PUBLIC) + " ".join(
        c.source for p in [*CHAPTERS, *EXERCISES] for c in nbformat.read(p, as_version=4).cells))
    found = []
    for path in SOLUTIONS:
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code":
                continue
            for block in re.findall(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell.source, re.S):
                for line in block.splitlines():
                    line = _squash(line)
                    if line.startswith("#"):
                        continue
                    if len(line) >= 16 and line not in public:
                        found.append(line)
    return sorted(set(found))


def leaks(site: Path, lines: list[str]) -> list[str]:
    """Every text file of the site, raw and (for HTML) as the text a reader sees: no solution line."""
    problems = []
    for path in sorted(site.rglob("*")):
        if not path.is_file() or path.suffix not in TEXT_SUFFIXES:
            continue
        raw = path.read_text(encoding="utf-8", errors="replace")
        texts = [_squash(raw), _squash(html.unescape(raw))]
        if path.suffix == ".html":
            texts.append(_squash("".join(parse(path).text)))
        if "### BEGIN SOLUTION" in raw:
            problems.append(f"{path.relative_to(site)}: a solution marker")
        for line in lines:
            if any(line in t for t in texts):
                problems.append(f"{path.relative_to(site)}: {line!r}")
    return problems


def _untracked() -> set[str]:
    """Files git neither tracks nor ignores, anywhere in the checkout (a chapter's code cell that wrote
    into results/ or kernels/ during the build leaves one); empty outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return set()
    return {f for f in out.decode().split("\0") if f}


def _with_outputs() -> set[str]:
    """Notebooks that already hold outputs (saved by JupyterLab while someone worked): not the build's."""
    found = set()
    for name in WATCHED:
        for nb in sorted((ROOT / name).glob("*.ipynb")) if name != "my-work" else []:
            try:
                if any(c.cell_type == "code" and c.get("outputs") for c in nbformat.read(nb, as_version=4).cells):
                    found.add(str(nb.relative_to(ROOT)))
            except Exception:
                continue
    return found


def _snapshot() -> set[str]:
    files = {str(p.relative_to(ROOT)) for name in WATCHED if (ROOT / name).is_dir()
             for p in (ROOT / name).rglob("*")
             if p.is_file() and "__pycache__" not in p.parts and ".ipynb_checkpoints" not in p.parts}
    return files | _untracked() | {f"{nb} (outputs saved into it)" for nb in _with_outputs()}


def _written_by_the_build(before: set[str]) -> list[str]:
    """What a build that ran or saved notebooks in place would leave: new files beside the notebooks, or
    outputs in them. (Not modification times: the course's authors may be editing a chapter meanwhile.)"""
    after = _snapshot()
    new = [f for f in after - before if not f.endswith(" (outputs saved into it)")]
    saved = [f for f in after - before if f.endswith(" (outputs saved into it)")]
    return sorted(new) + sorted(saved)


# ------------------------------------------------------------------------------------------- the build
@pytest.fixture(scope="session")
def site():
    """Build (or bring up to date: the run cache in book/_build keeps what did not change) once a session."""
    before = _snapshot()
    env = {k: v for k, v in os.environ.items() if k != "TTC_WORLD"}  # the build itself asks for the interpreter
    got = subprocess.run([sys.executable, str(ROOT / "book" / "build.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert got.returncode == 0, f"make site failed:\n{got.stdout[-6000:]}\n{got.stderr[-6000:]}"
    written = _written_by_the_build(before)
    assert not written, f"building the site wrote outside book/_build: {written[:10]}"
    return SITE


def test_build_dir_is_ignored_by_git():
    got = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "book/_build/html/index.html"])
    assert got.returncode == 0, "book/_build/ is not git-ignored"


def test_every_link_and_media_file_resolves(site):
    problems = broken_refs(site)
    assert not problems, "\n".join(problems[:30])


def _readme_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


class _Box(HTMLParser):
    """The text inside <div class="... run-it-yourself ...">, however deeply its content nests."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth, self.found, self.text = 0, 0, []

    def handle_starttag(self, tag, attrs):
        if tag != "div":
            return
        if self.depth:
            self.depth += 1
        elif "run-it-yourself" in (dict(attrs).get("class") or "").split():
            self.depth, self.found = 1, self.found + 1

    def handle_endtag(self, tag):
        if tag == "div" and self.depth:
            self.depth -= 1

    def handle_data(self, data):
        if self.depth:
            self.text.append(data)


def _box(page: Path) -> str:
    box = _Box()
    box.feed(page.read_text())
    assert box.found == 1, f"{page.name}: {box.found} run-it-yourself boxes, not one"
    return _squash("".join(box.text))


@pytest.mark.parametrize("nb", CHAPTERS + EXERCISES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_notebook_has_a_page_with_the_box(site, nb):
    page = site / nb.parent.name / (nb.stem + ".html")
    assert page.is_file(), f"no page for {nb.parent.name}/{nb.name}"
    first = next(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "markdown")
    title = re.search(r"^#\s+(.+)$", first, re.M).group(1).strip()
    text = _squash(html.unescape("".join(parse(page).text)))
    assert _squash(title) in text, f"{page.name}: the title {title!r} is missing"
    box = _box(page)
    for line in _readme_commands():
        assert _squash(line) in box, f"{page.name}: the box lacks the README's {line.strip()!r}"
    assert "git clone" in box
    opens = f"chapters/{nb.name}" if nb.parent.name == "chapters" else f"my-work/{nb.name}"
    assert opens in box, f"{page.name}: the box does not say to open {opens}"


def test_the_front_page_lists_every_chapter(site):
    index = parse(site / "intro.html")
    links = {urlsplit(v).path for tag, attr, v in index.refs if tag == "a"}
    for nb in CHAPTERS + EXERCISES:
        assert f"{nb.parent.name}/{nb.stem}.html" in links, f"the front page does not link {nb.name}"
    assert "chapters/00_gpu_in_one_page.ipynb" in _box(site / "intro.html")


@pytest.mark.parametrize("nb", CHAPTERS, ids=lambda p: p.name)
def test_chapter_pages_show_what_the_interpreter_computed(site, nb):
    page_path = site / "chapters" / (nb.stem + ".html")
    page = parse(page_path)
    text = "".join(page.text)
    # every chapter's first cell prints kernels.describe_world()
    assert "world=interpreter" in text, f"{page_path.name}: no output from a run in the interpreter"
    cells = nbformat.read(nb, as_version=4).cells
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    images = [m for m in media_of(page) if "_images/" in m]
    if re.search(r"plt\.show\(\)|_figure\(|\.plot\(", code):
        assert images, f"{page_path.name}: the chapter draws plots, its page shows none"
    videos = [v for c in cells if c.cell_type == "markdown"
              for v in re.findall(r'<video[^>]*src="([^"]+)"', c.source)]
    for v in videos:
        assert v in media_of(page), f"{page_path.name}: the video {v} is not on the page"
        copied = page_path.parent / v
        assert copied.is_file() and copied.stat().st_size == (nb.parent / v).stat().st_size, \
            f"{page_path.name}: {v} was not copied into the site"


def test_exercise_pages_are_the_templates(site):
    for nb in EXERCISES:
        page = site / "exercises" / (nb.stem + ".html")
        text = "".join(parse(page).text)
        assert "YOUR CODE HERE" in text, f"{page.name}: not the template"


def test_no_solution_leaks(site):
    lines = solution_lines()
    assert len(lines) >= 20, f"only {len(lines)} distinctive solution lines: the check would prove little"
    problems = leaks(site, lines)
    problems += [f"{p.relative_to(site)}: a file from solutions/" for p in site.rglob("*")
                 if "solutions" in p.relative_to(site).parts]
    assert not problems, "solution text on the site:\n" + "\n".join(problems[:30])


# ---------------------------------------------------------------------- the checkers catch a planted fault
def _tiny_site(tmp_path: Path) -> Path:
    site = tmp_path / "html"
    (site / "chapters" / "media").mkdir(parents=True)
    (site / "_images").mkdir()
    (site / "_images" / "plot.png").write_bytes(b"\x89PNG fake")
    (site / "chapters" / "media" / "Scene.mp4").write_bytes(b"fake video")
    (site / "intro.html").write_text('<a href="chapters/a.html#top">a</a> <a href="#here" id="here">b</a>')
    (site / "chapters" / "a.html").write_text(
        '<h1 id="top">A</h1><img src="../_images/plot.png"><video src="media/Scene.mp4"></video>'
        '<a href="../intro.html">home</a> <a href="https://example.org/x">out</a>'
        '<pre><span>return first</span> <span>|</span> (second &lt;&lt; 4)</pre>')
    return site


def test_the_checkers_pass_a_good_tiny_site(tmp_path):
    site = _tiny_site(tmp_path)
    assert broken_refs(site) == []
    assert leaks(site, ["never on this site"]) == []


@pytest.mark.parametrize("fault", ["link", "fragment", "image", "video", "outside"])
def test_the_link_checker_fails_on_a_planted_fault(tmp_path, fault):
    site = _tiny_site(tmp_path)
    page = site / "chapters" / "a.html"
    if fault == "link":
        page.write_text(page.read_text().replace("../intro.html", "../intro-missing.html"))
    elif fault == "fragment":
        (site / "intro.html").write_text((site / "intro.html").read_text().replace("#top", "#nowhere"))
    elif fault == "image":
        (site / "_images" / "plot.png").unlink()
    elif fault == "video":
        (site / "chapters" / "media" / "Scene.mp4").unlink()
    elif fault == "outside":
        page.write_text(page.read_text().replace("../intro.html", "../../../etc/passwd"))
    assert broken_refs(site), f"a broken {fault} went unnoticed"


def test_the_leak_checker_fails_on_a_planted_solution_line(tmp_path):
    site = _tiny_site(tmp_path)
    # the planted line is split over highlighting spans and escaped, as Pygments writes code
    assert leaks(site, ["return first | (second << 4)"])
    lines = solution_lines()
    (site / "chapters" / "b.html").write_text(f"<pre>{html.escape(lines[0])}</pre>")
    assert any(lines[0] in p for p in leaks(site, lines))


def _build_module():
    """book/build.py as a module (it is a script, not part of a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("book_build", ROOT / "book" / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def test_the_build_refuses_a_link_into_solutions():
    build = _build_module()
    chapter = ROOT / "chapters" / "02_tiled_matmul.ipynb"
    assert build.linked_files(chapter, "see [the kernel](../kernels/tiled.py) and [01](01_three_loop_matmul.ipynb)") \
        == [Path("kernels/tiled.py")]
    for link in ("../solutions/ch02_tiled_matmul.ipynb", "../my-work/ch02_tiled_matmul.ipynb#x", "../../etc/passwd",
                 "../.git/config", "../.venv/pyvenv.cfg", "media/.hidden.mp4"):
        with pytest.raises(SystemExit):
            build.linked_files(chapter, f"[answer]({link})")
    # a link inside an HTML comment shows nothing and publishes nothing
    assert build.linked_files(chapter, "<!-- [old](../kernels/tiled.py) -->") == []


def test_the_build_refuses_media_from_outside_the_course(tmp_path):
    """<img>/<video> sources are checked like links: nothing from solutions/, my-work/, a hidden folder
    or outside the course is copied onto the site, and one in a comment is not copied at all."""
    build = _build_module()
    src = ROOT / "chapters" / "02_tiled_matmul.ipynb"
    for bad in ("../my-work/notes.txt", "../solutions/ch02_tiled_matmul.ipynb", "../../../../tmp/x.png", "../.git/HEAD"):
        with pytest.raises(SystemExit):
            build.publishable(src, bad, "shows")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# t"),
                                         nbformat.v4.new_markdown_cell('<!-- <img src="../my-work/notes.txt"> -->')])
    fake = tmp_path / "comment_only.ipynb"
    nbformat.write(nb, str(fake))
    media, linked = build.stage_notebook(fake, tmp_path / "out.ipynb", "box")
    assert media == [] and linked == []


def test_only_tracked_notebooks_become_pages():
    build = _build_module()
    copy = ROOT / "exercises" / "ch01_naive_matmul-Copy1.ipynb"
    try:
        copy.write_bytes((ROOT / "exercises" / "ch01_naive_matmul.ipynb").read_bytes())
        assert copy not in build.exercises() and ROOT / "exercises" / "ch01_naive_matmul.ipynb" in build.exercises()
    finally:
        copy.unlink(missing_ok=True)


def test_the_write_check_fails_on_a_planted_write(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "chapters").mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")])
    nbformat.write(nb, tmp_path / "chapters" / "00_x.ipynb")
    before = _snapshot()
    assert _written_by_the_build(before) == []
    (tmp_path / "chapters" / "plot.png").write_bytes(b"written where the notebook ran")
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nbformat.write(nb, tmp_path / "chapters" / "00_x.ipynb")
    assert _written_by_the_build(before) == ["chapters/plot.png", "chapters/00_x.ipynb (outputs saved into it)"]


def test_the_write_check_sees_new_files_anywhere_and_not_outputs_saved_before():
    before = _snapshot()
    planted = ROOT / "results" / "_planted_by_a_build.json"
    try:
        planted.write_text("{}")
        assert "results/_planted_by_a_build.json" in _written_by_the_build(before)
    finally:
        planted.unlink(missing_ok=True)
    assert _written_by_the_build(before) == []


def test_every_video_is_an_mp4_not_a_pointer_or_a_stub():
    """The videos the chapters play are real MP4 files (an ISO media 'ftyp' box first), not a Git LFS
    pointer or an empty file: only chapter 03's is played by the browser test."""
    videos = sorted((ROOT / "chapters" / "media").glob("*.mp4"))
    assert videos
    for v in videos:
        head = v.read_bytes()[:12]
        assert head[4:8] == b"ftyp" and v.stat().st_size > 20_000, f"{v.relative_to(ROOT)} is not a playable MP4"
