"""Render the course's animations to ``chapters/media/<Scene>.mp4``.

    python -m animations.render                          # every scene, medium quality (720p30)
    python -m animations.render --quality low KLoopScene # one scene, 480p15
    python -m animations.render --out /tmp/videos        # somewhere else

Run it from the repository root. Manim's intermediate files (partial movies, text caches) go to a
temporary directory that is removed afterwards; only the final ``.mp4`` files are written to ``--out``.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import kernels  # noqa: F401  (before anything that could import triton)

from . import SCENE_NAMES

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "chapters" / "media"
QUALITIES = {  # name -> (pixel_width, pixel_height, frame_rate), as manim's -ql / -qm / -qh
    "low": (854, 480, 15),
    "medium": (1280, 720, 30),
    "high": (1920, 1080, 60),
}


# x264 settings for the final file. Manim encodes every animation as its own segment starting with
# a keyframe; a single re-encode with few keyframes makes the videos 2-3x smaller at the same look.
CRF = "26"


class RenderError(RuntimeError):
    """A scene could not be rendered (unknown name, or manim failed)."""


@dataclass
class Rendered:
    name: str
    path: Path  # the final video
    scene: object  # the manim Scene instance, with its drawn_* records
    seconds: float  # wall time of the render


def scene_class(name: str):
    """The scene class called ``name``; ``RenderError`` if there is none."""
    if name not in SCENE_NAMES:
        raise RenderError(f"unknown scene {name!r}; known scenes: {', '.join(SCENE_NAMES)}")
    from . import scenes

    return getattr(scenes, name)


def render_scene(name: str, quality: str = "medium", out_dir: Path | str = DEFAULT_OUT,
                 config_overrides: dict | None = None) -> Rendered:
    """Render scene ``name`` and write ``out_dir/<name>.mp4``.

    ``config_overrides`` are extra manim config values (e.g. ``{"frame_rate": 5}`` in the tests),
    applied after the quality preset.
    """
    cls = scene_class(name)
    if quality not in QUALITIES:
        raise RenderError(f"unknown quality {quality!r}; use one of {', '.join(QUALITIES)}")
    from manim import config, tempconfig

    width, height, fps = QUALITIES[quality]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.mp4"
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ttc-manim-") as tmp:
        settings = {
            "pixel_width": width, "pixel_height": height, "frame_rate": fps,
            "media_dir": tmp, "output_file": name, "format": "mp4",
            "disable_caching": True, "preview": False, "save_last_frame": False,
            "progress_bar": "none", "verbosity": "WARNING", "log_to_file": False,
            "background_color": "#101418",
        }
        settings.update(config_overrides or {})
        unknown = [k for k in settings if k not in config.copy()]
        if unknown:  # tempconfig silently drops keys it does not know
            raise RenderError(f"unknown manim config keys: {unknown}")
        try:
            with tempconfig(settings):
                scene = cls()
                scene.render()
                movie = Path(scene.renderer.file_writer.movie_file_path)
        except Exception as exc:
            raise RenderError(f"rendering {name} failed: {type(exc).__name__}: {exc}") from exc
        if not movie.is_file() or movie.stat().st_size == 0:
            raise RenderError(f"rendering {name} produced no video (expected {movie})")
        partial = target.with_name(f".{name}.part.mp4")
        try:
            compact_video(movie, partial, settings["frame_rate"])
        except Exception as exc:  # keep manim's own (larger) file rather than failing
            print(f"warning: re-encoding {name} failed ({exc}); keeping manim's file", file=sys.stderr)
            shutil.copyfile(movie, partial)
        partial.replace(target)  # the old video stays until the new one is complete
    return Rendered(name, target, scene, time.perf_counter() - t0)


def compact_video(src: Path, dst: Path, fps, crf: str = CRF) -> None:
    """Re-encode ``src`` (H.264 mp4 from manim) into ``dst`` as one stream with few keyframes.

    Uses PyAV, which manim already depends on (no ffmpeg binary needed). ``+faststart`` puts the
    index first so browsers (the notebooks' ``<video>`` tags) can start playing at once.
    """
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4",
                                           options={"movflags": "+faststart"}) as out:
        vin = inp.streams.video[0]
        rate = Fraction(fps).limit_denominator(1001)
        vout = out.add_stream("libx264", rate=rate,
                              options={"crf": crf, "preset": "medium", "tune": "animation"})
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.codec_context.time_base = 1 / rate
        for i, frame in enumerate(inp.decode(vin)):
            frame.pts = i
            frame.time_base = vout.codec_context.time_base
            frame.pict_type = av.video.frame.PictureType.NONE  # let x264 choose the keyframes
            for packet in vout.encode(frame):
                out.mux(packet)
        for packet in vout.encode():
            out.mux(packet)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m animations.render",
                                 description="Render the course's Manim scenes to mp4.")
    ap.add_argument("scenes", nargs="*", metavar="SceneName",
                    help=f"scenes to render (default: all of {', '.join(SCENE_NAMES)})")
    ap.add_argument("--quality", "-q", choices=list(QUALITIES), default="medium",
                    help="low = 480p15, medium = 720p30 (default), high = 1080p60")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"directory for the videos (default: {DEFAULT_OUT.relative_to(ROOT)})")
    args = ap.parse_args(argv)

    names = args.scenes or list(SCENE_NAMES)
    unknown = [n for n in names if n not in SCENE_NAMES]
    if unknown:
        print(f"error: unknown scene(s): {', '.join(unknown)}. "
              f"Known scenes: {', '.join(SCENE_NAMES)}", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"rendering {name} ({args.quality}) ...", flush=True)
        try:
            r = render_scene(name, args.quality, args.out)
        except RenderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed.append(name)
            continue
        size = r.path.stat().st_size
        print(f"  {name}: {r.path} ({size / 1e6:.2f} MB, {r.seconds:.0f} s)", flush=True)
    if failed:
        print(f"error: {len(failed)} scene(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
