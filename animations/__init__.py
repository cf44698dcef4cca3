"""Manim animations for the course, drawn from ``kernels.schedule``.

* ``animations.plan``: pure functions (no Manim) that turn the shared schedule into what the scenes
  draw: which tiles a program walks, which tiles each wave of programs computes, which panels of A
  and B that wave touches. The tests check these against ``kernels.schedule`` directly.
* ``animations.scenes``: the Manim scenes (``KLoopScene``, ``TileOrderScene``, ``PersistentScene``,
  ``PipelineScene``, ``WarpRolesScene``, ``FP4BlockScene``, ``OnlineSoftmaxScene``, ``StreamKScene``).
* ``animations.render``: ``python -m animations.render [--quality low|medium|high] [Scene ...]``
  writes ``chapters/media/<Scene>.mp4``.

``kernels`` is imported first, as everywhere in the course: it decides the Triton world before
anything could import ``triton`` (the animations themselves only need the pure-Python schedule).
"""
import kernels  # noqa: F401  (must come before anything that imports triton)

SCENE_NAMES = ("KLoopScene", "TileOrderScene", "PersistentScene", "PipelineScene", "WarpRolesScene",
               "FP4BlockScene", "OnlineSoftmaxScene", "StreamKScene")

__all__ = ["SCENE_NAMES"]
