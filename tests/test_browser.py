"""JupyterLab in a real headless browser, as a learner meets it.

`make lab`'s own command line (read from `make -n lab`) starts JupyterLab from the repository's folder,
headless (no browser of its own, a free port, a token) and with every Jupyter and JupyterLab folder it
writes to (settings, workspaces, runtime files, checkpoints, the IPython profile) in a temporary folder,
so none of your own Jupyter settings is used and nothing of yours is changed. The exercises are copied, as `make lab` copies them into
`my-work/`, into a temporary folder of the repository that is removed afterwards; `my-work/` is never
used. Autosave is off, so the chapters stay as committed (checked at the end).

A headless Chromium (the system's, driven by Playwright) then checks what a learner sees:

1. chapter 00 opens and runs top to bottom (Run > Run All Cells): every code cell runs, and no cell
   shows anything on stderr. That rule is strict on purpose: JupyterLab shows stderr (a warning as much
   as an error's traceback) in red, and chapter 00 is the setup check, so on a working setup it prints
   no warning at all;
2. chapter 03's launch-model widget renders (its sliders and figure) and redraws the figure when a
   slider moves (only the two cells it needs are run);
3. chapter 03's animation, a `<video>`, loads its file (its metadata: duration and size);
4. an exercise opens from the file browser (double-clicked in the folder of copies); Run All shows its
   check cell's score (0 points for the untouched template), and with the answer typed in, full marks.

Without a browser (Chromium, or Playwright's Python package) the test is skipped and says why; with the
environment variable CI=true it fails instead. `make test` installs Chromium with apt when it runs as
root (`scripts/check_system.sh --browser`).
"""
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHAPTER_00 = "chapters/00_gpu_in_one_page.ipynb"
CHAPTER_03 = "chapters/03_persistent_matmul.ipynb"
EXERCISE = "ch05_pingpong_protocol.ipynb"  # plain Python: its check takes a second on any machine
EXERCISE_FN = "pingpong_consumer"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
START_S, LOAD_S, RUN_S = 120, 120, 120  # generous for a busy 2-core machine


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _no_browser(reason: str):
    message = (f"no headless browser for the JupyterLab test: {reason}. Install Chromium "
               f"(`sudo apt-get install -y chromium` on Debian) and Playwright's Python package "
               f"(`pip install playwright`, a dev dependency: `make setup` installs it)")
    if _in_ci():
        pytest.fail(f"{message}. CI=true: this test must run here.", pytrace=False)
    pytest.skip(message)


def _find_chromium() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


# ------------------------------------------------------------------------------------ the browser
@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _no_browser(f"Playwright's Python package is missing ({exc})")
    executable = _find_chromium()
    if executable is None:
        _no_browser(f"none of {', '.join(BROWSERS)} is on PATH")
    with sync_playwright() as pw:
        try:
            # --disable-dev-shm-usage: containers often have a tiny /dev/shm
            b = pw.chromium.launch(executable_path=executable, headless=True, args=["--disable-dev-shm-usage"])
        except Exception as exc:  # noqa: BLE001  (any reason the browser cannot start)
            lines = str(exc).split("Call log:")[0].strip().splitlines()
            said = [re.sub(r"^\[pid=\d+\]\[err\] ", "", x) for x in lines if "[err]" in x][-3:]
            _no_browser(f"{executable} does not start: {'; '.join([lines[0]] + said)}")
        yield b
        b.close()


# ------------------------------------------------------------------------------------ the server
def _make_lab_commands(work: str) -> tuple[list[str], list[str]]:
    """`make lab`'s two commands, as make would run them: the copy of the exercises (into `work`,
    not my-work/) and JupyterLab's command line."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    dry = subprocess.run(["make", "-n", "--no-print-directory", "lab", f"WORK={work}"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, f"make -n lab failed:\n{dry.stderr}"
    lines = [shlex.split(line) for line in dry.stdout.splitlines() if line.strip()]
    copy = [c for c in lines if c[1:3] == ["-m", "grader.workspace"]]
    lab = [c for c in lines if len(c) > 1 and Path(c[0]).name == "jupyter" and c[1] == "lab"]
    assert len(copy) == 1 and len(lab) == 1, f"make -n lab no longer shows one copy and one `jupyter lab`:\n{dry.stdout}"
    assert copy[0][-2:] == ["--workspace", work], copy[0]
    return copy[0], lab[0]


def _settings(folder: Path):
    """JupyterLab settings for the test only: no autosave (the chapters must stay as committed), no
    question about Jupyter's news."""
    for plugin, values in {
        "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
        "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }.items():
        path = folder / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _course_files() -> dict[Path, bytes]:
    """The course's notebooks this test opens or copies (not the others, which may be edited meanwhile)."""
    return {p: p.read_bytes() for p in (ROOT / CHAPTER_00, ROOT / CHAPTER_03, ROOT / "exercises" / EXERCISE)}


@pytest.fixture(scope="module")
def lab(browser):
    """JupyterLab as `make lab` starts it, headless; yields (base URL, token, exercise folder name)."""
    before = _course_files()
    checkpoints = [d for d in (ROOT / "chapters" / ".ipynb_checkpoints", ROOT / ".ipynb_checkpoints") if not d.exists()]
    tmp = Path(tempfile.mkdtemp(prefix="ttc-browser-"))
    work = Path(tempfile.mkdtemp(prefix="browser-test-work-", dir=ROOT))  # inside the served folder
    proc = None
    try:
        copy, lab_cmd = _make_lab_commands(work.name)
        done = subprocess.run(copy, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and (work / EXERCISE).is_file(), done.stdout + done.stderr

        dirs = {name: tmp / name for name in ("config", "data", "runtime", "settings", "workspaces",
                                              "checkpoints", "ipython")}
        for d in dirs.values():
            d.mkdir()
        _settings(dirs["settings"])
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(dirs["config"]), JUPYTER_DATA_DIR=str(dirs["data"]),
                   JUPYTER_RUNTIME_DIR=str(dirs["runtime"]), JUPYTERLAB_SETTINGS_DIR=str(dirs["settings"]),
                   JUPYTERLAB_WORKSPACES_DIR=str(dirs["workspaces"]), IPYTHONDIR=str(dirs["ipython"]))
        token = secrets.token_hex(16)
        headless = ["--no-browser", "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0",
                    f"--IdentityProvider.token={token}", f"--FileCheckpoints.root_dir={dirs['checkpoints']}"]
        log = open(tmp / "server.log", "w")
        proc = subprocess.Popen(lab_cmd + headless, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline, info = time.monotonic() + START_S, None
        while info is None:
            found = sorted(dirs["runtime"].glob(f"jpserver-{proc.pid}.json"))
            if found:
                try:
                    info = json.loads(found[0].read_text())
                except ValueError:  # being written
                    pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not start ({' '.join(lab_cmd + headless)}):\n"
                            f"{(tmp / 'server.log').read_text()[-3000:]}", pytrace=False)
            time.sleep(0.2)
        yield f"http://127.0.0.1:{info['port']}", token, work.name
    finally:
        if proc is not None:
            _stop(proc, locals().get("info"), locals().get("token"))
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)
    changed = [str(p.relative_to(ROOT)) for p, data in before.items() if p.read_bytes() != data]
    assert not changed, f"the browser session changed course files: {changed}"
    new = [str(d.relative_to(ROOT)) for d in checkpoints if d.exists()]
    assert not new, f"the browser session left checkpoints in the course's folders: {new}"


def _stop(proc, info, token):
    """Shut JupyterLab down the way its menu does (its kernels with it); end it if it does not."""
    if info and token and proc.poll() is None:
        try:
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{info['port']}/api/shutdown", method="POST", data=b"",
                headers={"Authorization": f"token {token}"}), timeout=10)
        except OSError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the session this test started for it
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# ------------------------------------------------------------------------------------ a page
@pytest.fixture
def page(browser, lab):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    p = context.new_page()
    p.js_errors = []
    p.on("pageerror", lambda exc: p.js_errors.append(str(exc)))
    yield p
    context.close()


def _lab_url(lab, path: str = "") -> str:
    """JupyterLab's address, `path` opened (as `make lab` opens chapter 00), in a workspace of its own:
    JupyterLab reopens what a workspace had open, and each check starts from a fresh one."""
    base, token, _ = lab
    return f"{base}/lab/workspaces/{secrets.token_hex(4)}" + (f"/tree/{path}" if path else "") + f"?token={token}"


def _open(page, lab, path: str):
    """Open notebook `path` and wait until its kernel is idle."""
    page.goto(_lab_url(lab, path), timeout=LOAD_S * 1000)
    _wait_notebook(page)


def _wait_notebook(page):
    """The open notebook, once its kernel has started and is idle (before that, Run All would ask which
    kernel to start)."""
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=LOAD_S * 1000)
    page.wait_for_function("""() => {
      const p = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
      const name = p && p.querySelector('.jp-Toolbar-item[data-jp-item-name="kernelName"]');
      const status = p && p.querySelector('.jp-Notebook-ExecutionIndicator');
      return name && status && !/no kernel/i.test(name.textContent) && status.dataset.status === 'idle';
    }""", timeout=LOAD_S * 1000)
    return panel


def _menu(page, menu: str, item: str):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(f"^{menu}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()


_STATE = """panel => {
  const code = [...panel.querySelectorAll('.jp-Notebook .jp-CodeCell')];
  return {
    prompts: code.map(c => (c.querySelector('.jp-InputArea-prompt') || {}).textContent || ''),
    busy: (panel.querySelector('.jp-Notebook-ExecutionIndicator') || {dataset: {}}).dataset.status,
    stderr: [...panel.querySelectorAll('%s')].map(e => e.textContent),
    tracebacks: [...panel.querySelectorAll('.jp-OutputArea-output')].map(e => e.textContent)
                  .filter(t => t.includes('Traceback (most recent call last)')),
    dialogs: [...document.querySelectorAll('.jp-Dialog')].map(e => e.textContent),
  };
}""" % STDERR.replace("'", "\\'")


def _state(page):
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)").evaluate(_STATE)


def _counts(prompts) -> list[int]:
    return [int(m.group(1)) for p in prompts if (m := re.fullmatch(r"\[(\d+)\]:", p.strip()))]


def _run_all(page) -> dict:
    """Run > Run All Cells, then wait until the run has started (a cell queued or running, or one with a
    new execution count) and ended (no cell queued or running, the kernel idle for a second)."""
    before = max(_counts(_state(page)["prompts"]), default=0)
    _menu(page, "Run", "Run All Cells")
    deadline = time.monotonic() + RUN_S
    started, quiet_since = False, None
    while True:
        s = _state(page)
        assert not s["dialogs"], f"JupyterLab shows a dialog: {s['dialogs']}"
        running = any("*" in p for p in s["prompts"])
        started = started or running or max(_counts(s["prompts"]), default=0) > before
        if started and not running and s["busy"] == "idle":
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since > 1.0:
                return s
        else:
            quiet_since = None
        assert time.monotonic() < deadline, f"Run All did not finish in {RUN_S} s: prompts {s['prompts']}"
        page.wait_for_timeout(200)


def _explain(page, s) -> str:
    return (f"prompts {s['prompts']}\nstderr outputs:\n" + "\n---\n".join(s["stderr"])
            + ("\ntracebacks printed as output:\n" + "\n---\n".join(s["tracebacks"]) if s.get("tracebacks") else "")
            + (f"\nJavaScript errors: {page.js_errors}" if page.js_errors else ""))


def _all_ran(s) -> bool:
    return bool(s["prompts"]) and len(_counts(s["prompts"])) == len(s["prompts"])


# ------------------------------------------------------------------------------------ the checks
def test_chapter_00_runs_top_to_bottom(page, lab):
    _open(page, lab, CHAPTER_00)
    code_cells = sum(c.cell_type == "code" for c in nbformat.read(ROOT / CHAPTER_00, 4).cells)
    s = _run_all(page)
    assert len(s["prompts"]) == code_cells, f"the page shows {len(s['prompts'])} code cells, the notebook has {code_cells}"
    assert not s["stderr"], "chapter 00 shows output on stderr (red):\n" + _explain(page, s)
    assert not s["tracebacks"], "chapter 00 shows a traceback (caught and printed):\n" + _explain(page, s)
    assert _all_ran(s), "Run All stopped before the last cell:\n" + _explain(page, s)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    text = panel.locator(".jp-OutputArea").all_text_contents()
    assert any("vector add: correct" in t for t in text), text
    assert not any(re.search(r"^BAD ", t, re.M) for t in text), text
    assert panel.locator(".jp-OutputArea-output img").count() >= 1, "the roofline plot is not shown"


def _select(page, index: int):
    """Select cell `index` (counting every cell) by clicking its prompt: command mode, as a learner does
    before Shift+Enter."""
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell").nth(index)
    cell.scroll_into_view_if_needed(timeout=LOAD_S * 1000)
    cell.locator(".jp-InputPrompt").click()
    return cell


def _run_cell(page, index: int):
    """Run cell `index` with Shift+Enter and wait until it ran."""
    cell = _select(page, index)
    page.keyboard.press("Shift+Enter")
    prompt = cell.locator(".jp-InputArea-prompt")
    deadline = time.monotonic() + RUN_S
    while not re.fullmatch(r"\[\d+\]:", prompt.text_content().strip()):
        assert time.monotonic() < deadline, f"cell {index} did not run in {RUN_S} s"
        page.wait_for_timeout(200)
    return cell


def _cell_index(path: Path, needle: str) -> int:
    cells = nbformat.read(path, 4).cells
    found = [i for i, c in enumerate(cells) if c.cell_type == "code" and needle in c.source]
    assert len(found) == 1, f"{path.name}: {len(found)} code cells contain {needle!r}"
    return found[0]


def test_widget_renders_and_responds(page, lab):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    _open(page, lab, CHAPTER_03)
    _run_cell(page, _cell_index(ROOT / CHAPTER_03, "import kernels"))
    cell = _run_cell(page, _cell_index(ROOT / CHAPTER_03, "widgets.waves_widget()"))
    sliders = cell.locator(".widget-slider")
    sliders.first.wait_for(timeout=LOAD_S * 1000)
    figure = cell.locator(".widget-output img, .jp-OutputArea-output img").first
    figure.wait_for(timeout=LOAD_S * 1000)
    before = figure.get_attribute("src")
    sms = cell.locator(".widget-slider", has=page.locator(".widget-label", has_text=re.compile("^SMs$")))
    readout = sms.locator(".widget-readout")
    old = int(readout.inner_text())
    sms.locator(".noUi-handle").focus()
    page.keyboard.press("ArrowRight")  # one SM more
    page.wait_for_function("([el, old]) => el.textContent.trim() !== old",
                           arg=[readout.element_handle(), str(old)], timeout=30_000)
    assert int(readout.inner_text()) == old + 1
    try:
        page.wait_for_function("([el, old]) => { const img = el.querySelector('img'); return img && img.src !== old; }",
                               arg=[cell.element_handle(), before], timeout=60_000)
    except PlaywrightTimeout:
        pytest.fail(f"the SMs slider moved from {old} to {old + 1}, and the widget's figure stayed the same",
                    pytrace=False)
    s = _state(page)
    assert not s["stderr"], "the widget's cells show output on stderr:\n" + _explain(page, s)


def test_video_loads(page, lab):
    _open(page, lab, CHAPTER_03)
    video = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownCell video").first
    video.scroll_into_view_if_needed(timeout=LOAD_S * 1000)
    handle = video.element_handle()
    page.wait_for_function("v => v.readyState >= 1 || v.error", arg=handle, timeout=60_000)
    got = handle.evaluate("v => ({src: v.currentSrc, ready: v.readyState, error: v.error && v.error.code, "
                          "duration: v.duration, width: v.videoWidth, height: v.videoHeight})")
    assert got["error"] is None and got["ready"] >= 1, f"the video did not load: {got}"
    assert "/files/chapters/media/" in got["src"] and got["src"].split("?")[0].endswith(".mp4"), got
    assert got["duration"] > 1 and got["width"] > 0 and got["height"] > 0, got


def test_exercise_opens_from_the_file_browser_and_checks(page, lab):
    work = lab[2]
    page.goto(_lab_url(lab), timeout=LOAD_S * 1000)
    listing = page.locator(".jp-FileBrowser .jp-DirListing-content")

    def item(name):
        return listing.locator(".jp-DirListing-item", has=page.locator(".jp-DirListing-itemText", has_text=re.compile(f"^{re.escape(name)}$")))

    page.locator(".jp-LauncherCard").first.wait_for(timeout=LOAD_S * 1000)  # JupyterLab has loaded
    page.locator(".jp-FileBrowser .jp-BreadCrumbs-home").click()  # the course's folder
    item(work).dblclick(timeout=LOAD_S * 1000)
    item(EXERCISE).dblclick(timeout=LOAD_S * 1000)
    panel = _wait_notebook(page)

    copy = ROOT / work / EXERCISE
    check = _cell_index(copy, f'grader.check("{EXERCISE_FN}"')
    s = _run_all(page)
    assert _all_ran(s) and not s["stderr"], "the exercise did not run cleanly:\n" + _explain(page, s)
    out = panel.locator(".jp-Notebook .jp-Cell").nth(check).locator(".jp-OutputArea").text_content()
    score = re.search(rf"{EXERCISE_FN}: NOT IMPLEMENTED \(0/(\d+) points", out)
    assert score, f"the check cell of the untouched exercise printed:\n{out}"

    # type the answer in (the solution's cell), run everything again: full marks
    solution = nbformat.read(ROOT / "solutions" / EXERCISE, 4)
    answer = solution.cells[_cell_index(ROOT / "solutions" / EXERCISE, f"def {EXERCISE_FN}(")].source
    stub = _select(page, _cell_index(copy, f"def {EXERCISE_FN}("))
    page.keyboard.press("Enter")  # edit mode
    stub.locator(".jp-InputArea-editor:not(.lm-mod-hidden) .cm-content:focus").wait_for(timeout=30_000)
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(answer)
    s = _run_all(page)
    assert _all_ran(s) and not s["stderr"], "the answered exercise did not run cleanly:\n" + _explain(page, s)
    out = panel.locator(".jp-Notebook .jp-Cell").nth(check).locator(".jp-OutputArea").text_content()
    points = score.group(1)
    assert re.search(rf"{EXERCISE_FN}: PASS \({points}/{points} points", out), f"with the answer, the check printed:\n{out}"
