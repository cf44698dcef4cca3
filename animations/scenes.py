"""The course's Manim scenes. Text only (``Text``, never ``Tex``/``MathTex``: no LaTeX needed).

Every position drawn here comes from ``animations.plan``, which only calls ``kernels.schedule``. The
scenes also record what they drew (``drawn_*`` attributes) so the tests can compare it with the
schedule after a render.
"""
from __future__ import annotations

import kernels  # noqa: F401  (decides the Triton world before anything imports triton)

import numpy as np
from manim import (
    DOWN, LEFT, RIGHT, UP, UR, WHITE, GREY_B, GREY_C, GREY_D, GREY_E, YELLOW,
    AnimationGroup, DashedLine, FadeIn, FadeOut, LaggedStart, Line, Rectangle, Scene, Text, Transform,
    ValueTracker, VGroup, ManimColor, linear,
)

from kernels.schedule import footprint

from .plan import (KLoopPlan, LaunchPlan, PipelinePlan, Wave, WarpRolesPlan, fmt_bytes, kloop_plan,
                   launch_plan, pipeline_plan, sharing_plan, wave_plan, warp_roles_plan)

FONT = "DejaVu Sans"
TIMES = "\u00d7"  # multiplication sign
ARROW = "\u2192"

A_COLOR = ManimColor("#4c9be8")  # blue: A
B_COLOR = ManimColor("#5cc27a")  # green: B
C_COLOR = ManimColor("#f2b134")  # amber: C / the accumulator


def text(s, size=24, color=WHITE, **kw) -> Text:
    return Text(s, font=FONT, font_size=size, color=color, **kw)


def fit_width(mob, width):
    """Shrink ``mob`` to ``width`` if it is wider (never enlarges)."""
    if mob.width > width:
        mob.scale_to_fit_width(width)
    return mob


def block_rect(origin, scale, r0, r1, c0, c1, **style) -> Rectangle:
    """Rectangle covering rows ``[r0, r1)`` and columns ``[c0, c1)`` of a matrix drawn with its
    top-left corner at ``origin`` and ``scale`` scene units per element (rows go down)."""
    w, h = (c1 - c0) * scale, (r1 - r0) * scale
    rect = Rectangle(width=w, height=h, **style)
    rect.move_to(origin + RIGHT * (c0 * scale + w / 2) + DOWN * (r0 * scale + h / 2))
    return rect


def matrix_with_grid(origin, scale, rows, cols, row_step, col_step, color) -> VGroup:
    """Outline of a ``rows x cols`` matrix with faint lines every ``row_step`` rows / ``col_step``
    columns (the tile boundaries the kernel uses)."""
    outline = block_rect(origin, scale, 0, rows, 0, cols, stroke_color=color, stroke_width=2.5,
                         fill_color=color, fill_opacity=0.08)
    lines = VGroup()
    for r in range(row_step, rows, row_step):
        y = origin[1] - r * scale
        lines.add(Line([origin[0], y, 0], [origin[0] + cols * scale, y, 0], stroke_width=1,
                       stroke_color=GREY_D))
    for c in range(col_step, cols, col_step):
        x = origin[0] + c * scale
        lines.add(Line([x, origin[1], 0], [x, origin[1] - rows * scale, 0], stroke_width=1,
                       stroke_color=GREY_D))
    return VGroup(outline, lines)



def _run_clock(scene, time, t_end, run_seconds, mobs):
    """Advance the scene's clock to ``t_end`` at a steady pace, then freeze every mobject that was
    following it (the timeline scenes all draw from one clock value)."""
    scene.play(time.animate.set_value(t_end), run_time=run_seconds, rate_func=linear)
    for mob in mobs:
        for m in mob.get_family():
            m.clear_updaters()

class KLoopScene(Scene):
    """One program of the tiled matmul walks K: load an A tile and a B tile, accumulate, repeat."""

    M, N, K = 128, 256, 160
    BLOCK_M, BLOCK_N, BLOCK_K = 32, 64, 32
    ORDER, GROUP_M = "grouped", 2
    PID = 5

    @classmethod
    def plan(cls) -> KLoopPlan:
        return kloop_plan(cls.M, cls.N, cls.K, cls.BLOCK_M, cls.BLOCK_N, cls.BLOCK_K, cls.PID,
                          cls.ORDER, cls.GROUP_M)

    def construct(self):
        p = self.plan()
        (r0, r1), (c0, c1) = p.rows, p.cols
        n = p.n_steps
        self.drawn_tile, self.drawn_steps = p.tile, []

        # ---- layout: B above C, A left of C, text panel on the right, caption at the bottom ----
        gap, left, top = 0.12, -6.75, 2.95
        s = min(5.55 / (p.K + p.M), 7.3 / (p.K + p.N))  # scene units per matrix element
        a_org = np.array([left, top - p.K * s - gap, 0])
        b_org = np.array([left + p.K * s + gap, top, 0])
        c_org = np.array([b_org[0], a_org[1], 0])
        panel_x = c_org[0] + p.N * s + 0.45
        panel_w = 6.85 - panel_x

        title = text("One program walks K, one tile at a time", 34).to_edge(UP, buff=0.22)

        A = matrix_with_grid(a_org, s, p.M, p.K, p.block_m, p.block_k, A_COLOR)
        B = matrix_with_grid(b_org, s, p.K, p.N, p.block_k, p.block_n, B_COLOR)
        C = matrix_with_grid(c_org, s, p.M, p.N, p.block_m, p.block_n, C_COLOR)
        a_lab = text(f"A  {p.M} {TIMES} {p.K}", 22, A_COLOR).next_to(A, UP, buff=0.12)
        b_lab = text(f"B  {p.K} {TIMES} {p.N}", 22, B_COLOR).next_to(B, LEFT, buff=0.15)
        c_lab = text(f"C  {p.M} {TIMES} {p.N}", 22, C_COLOR).next_to(C, DOWN, buff=0.12)

        info = VGroup(
            text(f"C = A @ B,  M={p.M}  N={p.N}  K={p.K}", 22),
            text(f"BLOCK_M={p.block_m}  BLOCK_N={p.block_n}  BLOCK_K={p.block_k}", 22),
            text(f"C is {p.grid_m} {TIMES} {p.grid_n} tiles; {p.order} order, group_m={p.group_m}",
                 22, GREY_B),
            text(f"program {p.pid} {ARROW} tile ({p.tile[0]}, {p.tile[1]})", 26, C_COLOR),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.2)
        fit_width(info, panel_w).move_to([panel_x, top, 0], aligned_edge=UP + LEFT)

        self.play(FadeIn(title), FadeIn(A), FadeIn(B), FadeIn(C), FadeIn(a_lab), FadeIn(b_lab),
                  FadeIn(c_lab), run_time=1.2)
        self.play(FadeIn(info, shift=0.2 * LEFT), run_time=0.8)

        # ---- the program's tile, its A row-panel and B column-panel ----
        c_tile = block_rect(c_org, s, r0, r1, c0, c1, stroke_color=C_COLOR, stroke_width=5,
                            fill_color=C_COLOR, fill_opacity=0.0)
        a_panel = block_rect(a_org, s, r0, r1, 0, p.K, stroke_color=A_COLOR, stroke_width=3,
                             fill_color=A_COLOR, fill_opacity=0.25)
        b_panel = block_rect(b_org, s, 0, p.K, c0, c1, stroke_color=B_COLOR, stroke_width=3,
                             fill_color=B_COLOR, fill_opacity=0.25)
        caption = self._caption(
            f"Program {p.pid} computes one {r1 - r0} {TIMES} {c1 - c0} tile of C. "
            f"It needs a row-panel of A ({r1 - r0} {TIMES} {p.K}) "
            f"and a column-panel of B ({p.K} {TIMES} {c1 - c0}).")
        self.play(FadeIn(c_tile), FadeIn(caption), run_time=0.8)
        self.play(FadeIn(a_panel), FadeIn(b_panel), run_time=1.0)
        self.wait(1.6)

        # ---- the K loop: counter, accumulator bar ----
        counter = text(f"k step 0 / {n}", 34, YELLOW)
        acc_lab = text(f"accumulator: {r1 - r0} {TIMES} {c1 - c0} fp32 in registers", 20, GREY_B)
        seg_w = min(0.7, panel_w / n)
        segs = VGroup(*[Rectangle(width=seg_w, height=0.32, stroke_color=C_COLOR, stroke_width=2,
                                  fill_color=C_COLOR, fill_opacity=0.0) for _ in range(n)])
        segs.arrange(RIGHT, buff=0)
        loads_lab = text(f"loads A[{r0}:{r1}, k:k+{p.block_k}]  B[k:k+{p.block_k}, {c0}:{c1}]", 20)
        loop = VGroup(counter, loads_lab, acc_lab, segs).arrange(DOWN, aligned_edge=LEFT, buff=0.22)
        fit_width(loop, panel_w).move_to([panel_x, c_org[1] - 0.05, 0], aligned_edge=UP + LEFT)
        new_caption = self._caption(
            f"Each step loads a {r1 - r0} {TIMES} {p.block_k} tile of A and a "
            f"{p.block_k} {TIMES} {c1 - c0} tile of B, multiplies them (tl.dot) "
            f"and adds the product to the accumulator.")
        self.play(FadeIn(loop), Transform(caption, new_caption), run_time=0.8)

        prev = None
        for st in p.steps:
            self.drawn_steps.append((st.k0, st.k1))
            a_t = block_rect(a_org, s, r0, r1, st.k0, st.k1, stroke_color=WHITE, stroke_width=3,
                             fill_color=A_COLOR, fill_opacity=0.95)
            b_t = block_rect(b_org, s, st.k0, st.k1, c0, c1, stroke_color=WHITE, stroke_width=3,
                             fill_color=B_COLOR, fill_opacity=0.95)
            new_counter = text(f"k step {st.index + 1} / {n}", 34, YELLOW).move_to(
                counter, aligned_edge=LEFT)
            new_loads = text(f"loads A[{r0}:{r1}, {st.k0}:{st.k1}]  B[{st.k0}:{st.k1}, {c0}:{c1}]",
                             20, WHITE)
            fit_width(new_loads, panel_w).move_to(loads_lab, aligned_edge=LEFT)
            anims = [FadeIn(a_t), FadeIn(b_t), Transform(counter, new_counter),
                     Transform(loads_lab, new_loads)]
            if prev is not None:
                anims += [FadeOut(m) for m in prev]
            self.play(*anims, run_time=0.55)
            # feed the C tile: the A tile spreads over the tile's BLOCK_N columns (each A element is
            # used once per column), the B tile over its BLOCK_M rows.
            a_fly = a_t.copy()
            b_fly = b_t.copy()
            a_dst = c_tile.copy().set_style(fill_color=A_COLOR, fill_opacity=0.55, stroke_width=0)
            b_dst = c_tile.copy().set_style(fill_color=B_COLOR, fill_opacity=0.55, stroke_width=0)
            self.play(Transform(a_fly, a_dst), Transform(b_fly, b_dst), run_time=0.8)
            level = (st.index + 1) / n
            self.play(FadeOut(a_fly), FadeOut(b_fly),
                      c_tile.animate.set_fill(C_COLOR, opacity=0.15 + 0.75 * level),
                      segs[st.index].animate.set_fill(C_COLOR, opacity=0.9), run_time=0.45)
            prev = (a_t, b_t)
        self.play(*[FadeOut(m) for m in prev], run_time=0.4)

        loads = (r1 - r0) * p.K + p.K * (c1 - c0)
        fmas = (r1 - r0) * (c1 - c0) * p.K
        final = self._caption(
            f"Each loaded element of A is used BLOCK_N = {p.a_reuse} times, each element of B "
            f"BLOCK_M = {p.b_reuse} times: {loads:,} elements loaded for {fmas:,} multiply-adds "
            f"({fmas / loads:.0f} per element).", color=YELLOW)
        self.play(Transform(caption, final), run_time=0.8)
        self.wait(4.0)

    @staticmethod
    def _caption(s, color=WHITE) -> VGroup:
        """A caption of up to two lines at the bottom of the frame."""
        words, lines, cur = s.split(), [], ""
        for w in words:  # wrap at ~95 characters
            if cur and len(cur) + 1 + len(w) > 95:
                lines.append(cur)
                cur = w
            else:
                cur = f"{cur} {w}".strip()
        lines.append(cur)
        cap = VGroup(*[text(line, 21, color) for line in lines]).arrange(DOWN, buff=0.12)
        return fit_width(cap, 13.6).to_edge(DOWN, buff=0.2)


WAVE_COLORS = [ManimColor(c) for c in (
    "#3b7dd8", "#2a9d8f", "#5a9e3a", "#c98a12", "#d2602a", "#c23b5a", "#8e4fc4", "#5b6fb5")]


class TileOrderScene(Scene):
    """Row-major vs grouped tile order: which panels of A and B each wave of programs needs."""

    GRID_M, GRID_N = 8, 8
    WAVE = 8  # programs running at the same time
    GROUP_M = 4
    K, BLOCK_M, BLOCK_N, ELEM_BYTES = 4096, 128, 128, 2
    SLOW_WAVES = 2  # the first waves are played slowly, the rest faster
    ORDERS = (("row", "row-major order"), ("grouped", "grouped order, group_m = {g}"))

    @classmethod
    def plans(cls) -> dict:
        """``{order: [Wave, ...]}`` for the two orders the scene shows."""
        return {order: wave_plan(cls.GRID_M, cls.GRID_N, cls.WAVE, cls.K, cls.BLOCK_M, cls.BLOCK_N,
                                 order, cls.GROUP_M, cls.ELEM_BYTES)
                for order, _ in cls.ORDERS}

    def construct(self):
        plans = self.plans()
        gm, gn = self.GRID_M, self.GRID_N
        n_waves = len(plans["row"])
        self.drawn_order = {order: [None] * (gm * gn) for order in plans}
        self.drawn_footprints = {order: [] for order in plans}

        title = text("Tile order decides what one wave reads", 34).to_edge(UP, buff=0.2)
        # one A panel + one B panel is the footprint of a single tile
        one_tile = footprint([(0, 0)], self.K, self.BLOCK_M, self.BLOCK_N, self.ELEM_BYTES).bytes
        panel_b = one_tile // 2 if self.BLOCK_M == self.BLOCK_N else None
        sub = (f"C: {gm} {TIMES} {gn} tiles of {self.BLOCK_M} {TIMES} {self.BLOCK_N},  K = {self.K},"
               f"  {self.ELEM_BYTES} B per element")
        if panel_b is not None:
            sub += f": one panel = {fmt_bytes(panel_b)}"
        sub += f".  One wave = {self.WAVE} programs at once."
        subtitle = fit_width(text(sub, 20, GREY_B), 13.6).next_to(title, DOWN, buff=0.12)

        # ---- two identical diagrams: B panels above, A panels to the left, C tiles ----
        t = min(0.4, 3.2 / max(gm, gn))  # tile size
        bar = 0.34  # thickness of a panel bar (K is drawn short: it's the same for every panel)
        sides = {}
        for (order, label), cx in zip(self.ORDERS, (-3.55, 3.55)):
            grid_w, grid_h = gn * t, gm * t
            x0 = cx - (grid_w + bar + 0.1) / 2 + bar + 0.1  # left edge of the C grid
            y0 = 1.72  # top edge of the C grid
            tiles = {}
            for m in range(gm):
                for nn in range(gn):
                    r = Rectangle(width=t, height=t, stroke_color=GREY_C, stroke_width=1,
                                  fill_color=GREY_E, fill_opacity=0.5)
                    r.move_to([x0 + (nn + 0.5) * t, y0 - (m + 0.5) * t, 0])
                    tiles[(m, nn)] = r
            a_bars = [Rectangle(width=bar, height=t * 0.86, stroke_color=A_COLOR, stroke_width=1.5,
                                fill_color=A_COLOR, fill_opacity=0.08)
                      .move_to([x0 - 0.1 - bar / 2, y0 - (m + 0.5) * t, 0]) for m in range(gm)]
            b_bars = [Rectangle(width=t * 0.86, height=bar, stroke_color=B_COLOR, stroke_width=1.5,
                                fill_color=B_COLOR, fill_opacity=0.08)
                      .move_to([x0 + (nn + 0.5) * t, y0 + 0.1 + bar / 2, 0]) for nn in range(gn)]
            head = text(label.format(g=self.GROUP_M), 24, YELLOW)
            head.move_to([cx, y0 + 0.1 + bar + 0.62, 0])
            b_key = text("B column-panels", 16, B_COLOR)
            b_key.next_to(VGroup(*b_bars), UP, buff=0.06)
            a_key = text("A row-panels", 16, A_COLOR).rotate(np.pi / 2)
            a_key.next_to(VGroup(*a_bars), LEFT, buff=0.08)
            # the stats block is left-aligned where the widest (last) one is centred under the side
            widest = self._stats(plans[order][-1], sum(wv.panels for wv in plans[order]),
                                 sum(wv.footprint.bytes for wv in plans[order]), n_waves)
            stats_at = np.array([cx - widest.width / 2, y0 - grid_h - 0.6, 0])
            stats = self._stats(None, 0, 0, n_waves).move_to(stats_at, aligned_edge=LEFT)
            sides[order] = dict(tiles=tiles, a_bars=a_bars, b_bars=b_bars, head=head, stats=stats,
                                a_key=a_key, b_key=b_key, stats_at=stats_at, labels=[], total_panels=0, total_bytes=0, cx=cx,
                                bottom=y0 - grid_h)

        self.play(FadeIn(title), FadeIn(subtitle), run_time=0.8)
        self.play(*[FadeIn(VGroup(*sd["tiles"].values(), *sd["a_bars"], *sd["b_bars"], sd["head"],
                                  sd["a_key"], sd["b_key"], sd["stats"])) for sd in sides.values()],
                  run_time=1.0)
        self.wait(0.5)

        for w in range(n_waves):
            slow = w < self.SLOW_WAVES
            color = WAVE_COLORS[w % len(WAVE_COLORS)]
            # 1. the previous wave is done: its tiles dim, its panels go back to grey
            if w > 0:
                dim = []
                for order, sd in sides.items():
                    for tile in plans[order][w - 1].tiles:
                        dim.append(sd["tiles"][tile].animate.set_fill(opacity=0.35))
                    dim += [b.animate.set_fill(A_COLOR, opacity=0.08) for b in sd["a_bars"]]
                    dim += [b.animate.set_fill(B_COLOR, opacity=0.08) for b in sd["b_bars"]]
                self.play(*dim, run_time=0.3)
            # 2. the wave's programs start, in launch order; the panels they need light up
            anims = []
            for order, sd in sides.items():
                wave = plans[order][w]
                steps = []
                for pid, tile in zip(wave.pids, wave.tiles):
                    self.drawn_order[order][pid] = tile
                    lab = text(str(pid), 15, WHITE).move_to(sd["tiles"][tile])
                    sd["labels"].append(lab)
                    steps.append(AnimationGroup(
                        sd["tiles"][tile].animate.set_fill(color, opacity=0.95), FadeIn(lab)))
                anims.append(LaggedStart(*steps, lag_ratio=0.3 if slow else 0.15))
                anims += [sd["a_bars"][m].animate.set_fill(color, opacity=0.95) for m in wave.a_rows]
                anims += [sd["b_bars"][nn].animate.set_fill(color, opacity=0.95) for nn in wave.b_cols]
            self.play(*anims, run_time=2.0 if slow else 0.9)
            # 3. the counts, from kernels.schedule.footprint
            upd = []
            for order, sd in sides.items():
                wave = plans[order][w]
                fp = wave.footprint
                self.drawn_footprints[order].append(fp)
                sd["total_panels"] += fp.a_panels + fp.b_panels
                sd["total_bytes"] += fp.bytes
                new = self._stats(wave, sd["total_panels"], sd["total_bytes"], n_waves)
                new.move_to(sd["stats_at"], aligned_edge=LEFT)
                upd.append(Transform(sd["stats"], new))
            self.play(*upd, run_time=0.4)
            self.wait(1.4 if slow else 0.5)

        # ---- the conclusion, with numbers from the plans ----
        def mean_panels(order):
            return sum(wv.panels for wv in plans[order]) / len(plans[order])

        def mean_bytes(order):
            return sum(wv.footprint.bytes for wv in plans[order]) / len(plans[order])

        r_p, g_p = mean_panels("row"), mean_panels("grouped")
        lines = [
            f"Same {gm * gn} tiles, same work. Per wave, grouped order reads {g_p:g} panels "
            f"({fmt_bytes(mean_bytes('grouped'))}), row-major {r_p:g} ({fmt_bytes(mean_bytes('row'))}).",
            "Fewer panels per wave: each panel fetched from DRAM feeds more tiles while it is in L2.",
        ]
        concl = VGroup(*[text(x, 20, YELLOW) for x in lines]).arrange(DOWN, buff=0.1)
        fit_width(concl, 13.6).to_edge(DOWN, buff=0.2)
        self.play(FadeIn(concl), run_time=0.8)
        self.wait(4.0)

    def _stats(self, wave: Wave | None, total_panels, total_bytes, n_waves) -> VGroup:
        """Three lines under a grid: which wave, what it reads, the running sum."""
        if wave is None:
            rows = ["wave -", "reads -", "sum over waves so far: -"]
        else:
            fp = wave.footprint
            rows = [
                f"wave {wave.index + 1} / {n_waves}: programs {wave.pids[0]}..{wave.pids[-1]}",
                f"reads {fp.a_panels} A + {fp.b_panels} B = {fp.a_panels + fp.b_panels} panels, "
                f"{fmt_bytes(fp.bytes)}",
                f"sum over waves so far: {total_panels} panels, {fmt_bytes(total_bytes)}",
            ]
        colors = [WHITE, YELLOW, GREY_B]
        return VGroup(*[text(r, 19, c) for r, c in zip(rows, colors)]).arrange(
            DOWN, aligned_edge=LEFT, buff=0.1)


IDLE_COLOR = ManimColor("#c23b5a")
OVERHEAD_COLOR = GREY_C


def fmt_t(t) -> str:
    """A time of the launch model, short: ``3.75``, ``3.2``, ``3``."""
    return f"{t:.2f}".rstrip("0").rstrip(".")


def set_box(mob, x0, x1, y_mid, h):
    """Make ``mob`` (a Rectangle) the box ``[x0, x1] x [y_mid - h/2, y_mid + h/2]``."""
    top, bot = y_mid + h / 2, y_mid - h / 2
    mob.set_points_as_corners([[x0, top, 0], [x1, top, 0], [x1, bot, 0], [x0, bot, 0], [x0, top, 0]])
    return mob


class PersistentScene(Scene):
    """One program per tile vs one persistent program per SM: the same tiles on the same SMs, drawn
    as a timeline per SM from ``kernels.schedule.simulate_launch``."""

    GRID_M, GRID_N = 2, 7  # 14 tiles of C
    NUM_SMS = 6  # 14 = 2 full waves of 6 + a ragged wave of 2
    TILE_TIME, BLOCK_OVERHEAD = 1.0, 0.25
    ORDER, GROUP_M = "grouped", 2
    RUN_SECONDS = 15.0  # the whole launch, played at a constant speed
    SIDES = ((False, "one program per tile"), (True, "persistent: one program per SM"))

    @classmethod
    def plans(cls) -> dict:
        """``{persistent: LaunchPlan}`` for the two launches the scene shows."""
        return {persistent: launch_plan(cls.GRID_M, cls.GRID_N, cls.NUM_SMS, persistent,
                                        cls.TILE_TIME, cls.BLOCK_OVERHEAD, cls.ORDER, cls.GROUP_M)
                for persistent, _ in cls.SIDES}

    def construct(self):
        plans = self.plans()
        P = self.NUM_SMS
        t_end = max(p.makespan for p in plans.values())
        self.drawn_blocks = {k: [] for k in plans}  # (sm, start, end, tile) of each tile block
        self.drawn_overheads = {k: [] for k in plans}  # (sm, start, end) of each grey start block
        self.drawn_grid = {k: {} for k in plans}  # tile id -> (pid_m, pid_n) where it is drawn
        self.drawn_lit = {k: [] for k in plans}  # tile ids in the order their C tile lit up
        self.drawn_launched = {k: 0 for k in plans}  # the last value of the programs counter
        self.drawn_finish = {}  # the finish time written under each side

        title = text("One program per tile vs persistent programs", 32).to_edge(UP, buff=0.2)
        sub = (f"{plans[False].num_tiles} tiles of C on {P} SMs. A tile takes "
               f"{fmt_t(self.TILE_TIME)} time unit; starting a program costs "
               f"{fmt_t(self.BLOCK_OVERHEAD)} (grey).")
        subtitle = fit_width(text(sub, 19, GREY_B), 13.6).next_to(title, DOWN, buff=0.12)

        time = ValueTracker(0.0)
        row_h, row_gap = 0.36, 0.06
        t_scale = 5.2 / t_end  # scene units per time unit, the same on both sides
        ct = 0.36  # C tile size
        sides = {}
        for (persistent, label), cx in zip(self.SIDES, (-3.55, 3.55)):
            plan = plans[persistent]
            left = cx - 3.3
            x0 = left + 0.75  # time 0 on this side's timeline
            head = text(label, 23, YELLOW).move_to([cx, 2.45, 0])

            # the C grid: tiles light up when they are finished
            grid_org = np.array([left + 0.1, 2.1, 0])
            c_tiles, c_labels = {}, VGroup()
            for tile, (m, n) in enumerate(plan.tile_pos):
                r = Rectangle(width=ct, height=ct, stroke_color=GREY_C, stroke_width=1,
                              fill_color=GREY_E, fill_opacity=0.5)
                r.move_to(grid_org + RIGHT * (n + 0.5) * ct + DOWN * (m + 0.5) * ct)
                c_tiles[tile] = r
                c_labels.add(text(str(tile), 13, WHITE).move_to(r))
                self.drawn_grid[persistent][tile] = (m, n)
            c_key = text("C tiles", 16, C_COLOR).next_to(VGroup(*c_tiles.values()), DOWN, buff=0.06)
            c_key.align_to(grid_org, LEFT)

            # the programs counter, right of the grid
            count_lab = text("programs launched", 18, GREY_B)
            count_lab.move_to([grid_org[0] + self.GRID_N * ct + 0.3, 1.98, 0], aligned_edge=LEFT)
            count = text("0", 30, WHITE).next_to(count_lab, DOWN, buff=0.08).align_to(count_lab, LEFT)

            # one row per SM
            rows_top = 0.98
            y_of = [rows_top - (sm + 0.5) * (row_h + row_gap) for sm in range(P)]
            bottom = rows_top - P * (row_h + row_gap)
            sm_labels = VGroup(*[text(f"SM {sm}", 15, GREY_B).move_to([left + 0.33, y_of[sm], 0])
                                 for sm in range(P)])
            lanes = VGroup(*[Line([x0, y, 0], [x0 + t_end * t_scale, y, 0], stroke_width=1,
                                  stroke_color=GREY_D) for y in y_of])
            axis = Line([x0, bottom, 0], [x0 + t_end * t_scale + 0.15, bottom, 0], stroke_width=2,
                        stroke_color=GREY_B)
            ticks = VGroup()
            for k in range(int(t_end) + 1):
                x = x0 + k * t_scale
                ticks.add(Line([x, bottom, 0], [x, bottom - 0.08, 0], stroke_width=2, stroke_color=GREY_B))
                ticks.add(text(str(k), 14, GREY_B).move_to([x, bottom - 0.22, 0]))
            ticks.add(text("time", 14, GREY_B).next_to(axis, RIGHT, buff=0.08))

            # the blocks, drawn growing from their start to the current time
            blocks = []
            for sm, start, end in plan.overheads:
                self.drawn_overheads[persistent].append((sm, start, end))
                blocks.append((sm, start, end, None, OVERHEAD_COLOR))
            for s in plan.spans:
                self.drawn_blocks[persistent].append((s.sm, s.start, s.end, s.tile))
                blocks.append((s.sm, s.start, s.end, s.tile, WAVE_COLORS[(s.tile // P) % len(WAVE_COLORS)]))
            block_mobs, tile_labels = VGroup(), VGroup()
            for sm, start, end, tile, color in blocks:
                rect = Rectangle(width=0.1, height=row_h, stroke_color=WHITE, stroke_width=1,
                                 fill_color=color, fill_opacity=0.9)
                rect.add_updater(self._grow(time, rect, x0, t_scale, start, end, y_of[sm], row_h))
                block_mobs.add(rect)
                if tile is not None:
                    lab = text(str(tile), 16, WHITE).move_to(
                        [x0 + (start + end) / 2 * t_scale, y_of[sm], 0])
                    lab.add_updater(self._show_after(time, (start + end) / 2))  # once the block reaches it
                    tile_labels.add(lab)
            for s in sorted(plan.spans, key=lambda s: (s.end, s.tile)):
                color = WAVE_COLORS[(s.tile // P) % len(WAVE_COLORS)]
                c_tiles[s.tile].add_updater(self._light(time, s.end, color, persistent, s.tile))
            launch_times = [t for t, _, _ in plan.launches]
            count.add_updater(self._counter(time, count, launch_times, persistent))
            now = Line([x0, rows_top + 0.05, 0], [x0, bottom, 0], stroke_width=2, stroke_color=YELLOW)
            now.add_updater(lambda m, x0=x0: m.set_x(x0 + time.get_value() * t_scale))

            sides[persistent] = dict(
                plan=plan, x0=x0, y_of=y_of, bottom=bottom, rows_top=rows_top, cx=cx, now=now,
                static=VGroup(head, *c_tiles.values(), c_labels, c_key, count_lab, sm_labels, lanes,
                              axis, ticks),
                dynamic=[block_mobs, tile_labels, count, now], c_labels=c_labels)

        self.play(FadeIn(title), FadeIn(subtitle), run_time=0.8)
        self.play(*[FadeIn(sd["static"]) for sd in sides.values()], run_time=1.0)
        for sd in sides.values():
            self.add(*sd["dynamic"])
            self.add(sd["c_labels"])  # keep the C tile ids on top of the tiles
        caption = self._caption(
            f"Left: every tile is its own program, started when an SM frees up. Right: {P} programs "
            f"stay resident, program p loops over tiles p, p+{P}, p+{2 * P}, ...")
        self.play(FadeIn(caption), run_time=0.6)
        self.wait(1.2)

        _run_clock(self, time, t_end, self.RUN_SECONDS,
                   [m for sd in sides.values() for group in (sd["dynamic"], sd["static"]) for m in group])

        # ---- where each launch ends, and the idle tail ----
        finish_anims, idle_anims = [], []
        for persistent, sd in sides.items():
            plan = sd["plan"]
            end = plan.makespan
            self.drawn_finish[persistent] = end
            xe = sd["x0"] + end * t_scale
            line = DashedLine([xe, sd["rows_top"] + 0.05, 0], [xe, sd["bottom"], 0], stroke_width=2, stroke_color=YELLOW)
            fin = text(f"done at t = {fmt_t(end)}:  {plan.programs} programs,  SMs busy "
                       f"{plan.utilisation:.0%}", 19, YELLOW)
            fit_width(fin, 6.5).move_to([sd["cx"], sd["bottom"] - 0.62, 0])
            finish_anims += [FadeOut(sd["now"]), FadeIn(line), FadeIn(fin)]
            for sm, start, stop in plan.idle:
                box = Rectangle(width=(stop - start) * t_scale, height=row_h, stroke_color=IDLE_COLOR,
                                stroke_width=1.5, fill_color=IDLE_COLOR, fill_opacity=0.25)
                box.move_to([sd["x0"] + (start + stop) / 2 * t_scale, sd["y_of"][sm], 0])
                idle_anims += [FadeIn(box), FadeIn(text("idle", 14, WHITE).move_to(box))]
        self.play(*finish_anims, run_time=0.8)
        self.wait(1.0)
        self.play(*idle_anims, run_time=0.8)
        n, f = plans[False], plans[True]
        final = self._caption(
            f"Persistent: {f.programs} launches, not {n.programs}; the start cost is paid once, done at "
            f"t = {fmt_t(f.makespan)} vs {fmt_t(n.makespan)}. Both keep the ragged last wave "
            f"({n.num_tiles} tiles, {P} SMs) until tiles are split (later chapters).",
            color=YELLOW)
        self.play(Transform(caption, final), run_time=0.8)
        self.wait(4.5)

    # ---- updaters: everything moving is a function of the launch's time ----
    @staticmethod
    def _grow(time, rect, x0, t_scale, start, end, y, h):
        def update(m):
            t = time.get_value()
            if t <= start:
                m.set_fill(opacity=0).set_stroke(opacity=0)
                return
            stop = min(t, end)
            set_box(m, x0 + start * t_scale, x0 + stop * t_scale, y, h)
            m.set_fill(opacity=0.9).set_stroke(opacity=1)
        update(rect)
        return update

    @staticmethod
    def _show_after(time, start):
        def update(m):
            m.set_opacity(1.0 if time.get_value() > start else 0.0)
        return update

    def _light(self, time, end, color, side, tile):
        def update(m):
            if time.get_value() >= end - 1e-9 and tile not in self.drawn_lit[side]:
                m.set_fill(color, opacity=0.95)
                self.drawn_lit[side].append(tile)
        return update

    def _counter(self, time, count, launch_times, side):
        state = {"n": None}

        def update(m):
            n = sum(1 for t in launch_times if t <= time.get_value() + 1e-9)
            if n != state["n"]:
                state["n"] = n
                self.drawn_launched[side] = n
                m.become(text(str(n), 30, WHITE).move_to(m, aligned_edge=LEFT))
        return update

    _caption = staticmethod(KLoopScene._caption)


SLOT_COLORS = [WAVE_COLORS[i] for i in (0, 3, 1, 5, 6, 2, 4, 7)]  # shared-memory slot 0, 1, 2, ...


def grow_box(time, rect, x0, t_scale, start, end, y, h, opacity=0.9):
    """Updater: ``rect`` covers ``[start, min(time, end)]`` of a timeline row, invisible before."""
    def update(m):
        t = time.get_value()
        if t <= start:
            m.set_fill(opacity=0).set_stroke(opacity=0)
            return
        set_box(m, x0 + start * t_scale, x0 + min(t, end) * t_scale, y, h)
        m.set_fill(opacity=opacity).set_stroke(opacity=1)
    update(rect)
    return update


def show_after(time, t0):
    """Updater: the mobject is visible once the time has passed ``t0``."""
    def update(m):
        m.set_opacity(1.0 if time.get_value() > t0 else 0.0)
    return update


def finish_marker(time, t_end, x, top, bottom, label_at, label):
    """A dashed yellow line at ``x`` (the finish time) and a right-aligned label at ``label_at``;
    both appear when the scene's clock reaches ``t_end``."""
    line = DashedLine([x, top + 0.05, 0], [x, bottom, 0], stroke_width=2, stroke_color=YELLOW)
    fin = text(label, 19, YELLOW)
    fin.move_to(label_at, aligned_edge=RIGHT)
    for m in (line, fin):
        m.add_updater(show_after(time, t_end - 1e-9))
    return line, fin


class PipelineScene(Scene):
    """Software pipelining: one program's K loop with 1 and with 3 shared-memory slots, drawn as
    timelines of the copy engine (TMA) and the tensor cores from ``kernels.schedule.pipeline_timeline``."""

    K_STEPS = 6
    LOAD_TIME, MMA_TIME = 1.5, 1.0  # a tile takes longer to arrive than the math on it
    STAGES = (1, 3)
    LABELS = {1: "no pipelining (1 stage)", 3: "3 stages (num_stages=3)"}
    RUN_SECONDS = 14.0  # the slower loop, played at a constant speed

    @classmethod
    def plans(cls) -> dict:
        """``{stages: PipelinePlan}`` for the two loops the scene shows."""
        return {st: pipeline_plan(cls.K_STEPS, st, cls.LOAD_TIME, cls.MMA_TIME) for st in cls.STAGES}

    def construct(self):
        plans = self.plans()
        t_end = max(p.total for p in plans.values())
        self.drawn_blocks = {st: [] for st in plans}  # (engine, k, slot, start, end) of each block
        self.drawn_held = {st: [] for st in plans}  # (slot, start, end): a tile in shared memory
        self.drawn_waits = {st: [] for st in plans}  # (start, end): tensor cores waiting
        self.drawn_finish = {}  # stages -> the finish time written on that timeline
        self.drawn_busy = {}  # stages -> the tensor-core busy fraction written

        title = text("Software pipelining: keep the tensor cores fed", 32).to_edge(UP, buff=0.2)
        sub = (f"One program's K loop, {self.K_STEPS} steps. A tile takes {fmt_t(self.LOAD_TIME)} "
               f"time units to arrive (TMA), the math on it {fmt_t(self.MMA_TIME)} (tensor cores).")
        subtitle = fit_width(text(sub, 19, GREY_B), 13.6).next_to(title, DOWN, buff=0.12)

        time = ValueTracker(0.0)
        row_h, row_gap = 0.36, 0.08
        x0, x_right = -4.75, 6.55  # time 0 and the end of the longest loop
        t_scale = (x_right - x0) / t_end
        label_x = x0 - 0.15  # lane labels end here
        tops = {self.STAGES[0]: 2.25, self.STAGES[1]: 0.25}
        sides = {}
        for st in self.STAGES:
            plan = plans[st]
            top = tops[st]
            head = text(self.LABELS[st], 22, YELLOW).move_to([-6.9, top + 0.3, 0], aligned_edge=LEFT)
            y_slot = [top - (i + 0.5) * (row_h + row_gap) for i in range(st)]
            y_mma = top - st * (row_h + row_gap) - 0.1 - (row_h + row_gap) / 2
            bottom = y_mma - (row_h + row_gap) / 2
            labels = VGroup(*[text(f"TMA {ARROW} slot {i}", 15, SLOT_COLORS[i]).move_to(
                [label_x, y, 0], aligned_edge=RIGHT) for i, y in enumerate(y_slot)])
            labels.add(text("tensor cores", 15, WHITE).move_to([label_x, y_mma, 0], aligned_edge=RIGHT))
            lanes = VGroup(*[Line([x0, y, 0], [x_right, y, 0], stroke_width=1, stroke_color=GREY_D)
                             for y in (*y_slot, y_mma)])
            axis = Line([x0, bottom, 0], [x_right + 0.1, bottom, 0], stroke_width=2, stroke_color=GREY_B)
            ticks = VGroup()
            for k in range(int(t_end) + 1):
                x = x0 + k * t_scale
                ticks.add(Line([x, bottom, 0], [x, bottom - 0.07, 0], stroke_width=2, stroke_color=GREY_B))
                ticks.add(text(str(k), 13, GREY_B).move_to([x, bottom - 0.2, 0]))

            boxes, labs = VGroup(), VGroup()
            mma_of = {m.k: m for m in plan.mmas}
            # a tile sits in its slot from its arrival until the math that reads it is done
            for ld in plan.loads:
                end = mma_of[ld.k].end
                self.drawn_held[st].append((ld.slot, ld.end, end))
                r = Rectangle(width=0.1, height=row_h * 0.7, stroke_color=SLOT_COLORS[ld.slot],
                              stroke_width=1, fill_color=SLOT_COLORS[ld.slot])
                r.add_updater(grow_box(time, r, x0, t_scale, ld.end, end, y_slot[ld.slot], row_h * 0.7,
                                       opacity=0.25))
                boxes.add(r)
            for w0, w1 in plan.mma_waits:
                self.drawn_waits[st].append((w0, w1))
                r = Rectangle(width=0.1, height=row_h, stroke_color=IDLE_COLOR, stroke_width=1,
                              fill_color=IDLE_COLOR)
                r.add_updater(grow_box(time, r, x0, t_scale, w0, w1, y_mma, row_h, opacity=0.3))
                boxes.add(r)
            for sp in plan.spans:
                self.drawn_blocks[st].append((sp.engine, sp.k, sp.slot, sp.start, sp.end))
                y = y_slot[sp.slot] if sp.engine == "load" else y_mma
                r = Rectangle(width=0.1, height=row_h, stroke_color=WHITE, stroke_width=1,
                              fill_color=SLOT_COLORS[sp.slot])
                r.add_updater(grow_box(time, r, x0, t_scale, sp.start, sp.end, y, row_h))
                boxes.add(r)
                lab = text(f"k{sp.k}", 15, WHITE).move_to([x0 + (sp.start + sp.end) / 2 * t_scale, y, 0])
                lab.add_updater(show_after(time, (sp.start + sp.end) / 2))
                labs.add(lab)

            total = plan.total
            self.drawn_finish[st], self.drawn_busy[st] = total, plan.mma_busy
            fin_line, fin = finish_marker(
                time, total, x0 + total * t_scale, top, bottom, [x_right, top + 0.3, 0],
                f"done at t = {fmt_t(total)},  tensor cores busy {plan.mma_busy:.0%}")
            sides[st] = dict(static=VGroup(head, labels, lanes, axis, ticks),
                             dynamic=[boxes, labs, fin_line, fin], top=top, bottom=bottom)

        # key, under the second timeline
        def chip(color, opacity, h=0.22):
            return Rectangle(width=0.4, height=h, stroke_color=color, stroke_width=1, fill_color=color,
                             fill_opacity=opacity)
        key = VGroup(
            VGroup(chip(SLOT_COLORS[0], 0.9), text("loading (TMA) / math (tensor cores)", 15, GREY_B)),
            VGroup(chip(SLOT_COLORS[0], 0.25, 0.16), text("tile waiting in its slot until its math is done", 15, GREY_B)),
            VGroup(chip(IDLE_COLOR, 0.3), text("tensor cores waiting", 15, GREY_B)),
        )
        for item in key:
            item.arrange(RIGHT, buff=0.12)
        key.arrange(RIGHT, buff=0.45)
        fit_width(key, 13.4).move_to([0, sides[self.STAGES[1]]["bottom"] - 0.65, 0])

        # the time cursor: one segment per timeline (it must not cross the headers)
        now = VGroup(*[Line([x0, sd["top"] + 0.05, 0], [x0, sd["bottom"], 0], stroke_width=2,
                            stroke_color=YELLOW) for sd in sides.values()])
        now.add_updater(lambda m: m.set_x(x0 + time.get_value() * t_scale))

        self.play(FadeIn(title), FadeIn(subtitle), run_time=0.8)
        self.play(*[FadeIn(sd["static"]) for sd in sides.values()], FadeIn(key), run_time=1.0)
        for sd in sides.values():
            self.add(*sd["dynamic"])
        self.add(now)
        s1, s2 = self.STAGES
        caption = self._caption(
            f"Top: load step k, compute it, then load k+1: the tensor cores wait for every tile. "
            f"Bottom: {s2} slots in shared memory; a slot is refilled as soon as the math that read "
            f"it is done.")
        self.play(FadeIn(caption), run_time=0.6)
        self.wait(1.5)

        _run_clock(self, time, t_end, self.RUN_SECONDS, [m for sd in sides.values() for m in sd["dynamic"]] + [now])

        a, b = plans[s1], plans[s2]
        final = self._caption(
            f"With {s2} stages, the loads of steps k+1..k+{s2 - 1} are in flight while the tensor cores "
            f"work on step k, so they rarely wait: done at t = {fmt_t(b.total)} instead of "
            f"{fmt_t(a.total)} (busy {b.mma_busy:.0%} vs {a.mma_busy:.0%}).", color=YELLOW)
        self.play(FadeOut(now), Transform(caption, final), run_time=0.8)
        self.wait(4.5)

    _caption = staticmethod(KLoopScene._caption)


TILE_COLORS = [WAVE_COLORS[i] for i in (0, 3, 6, 2, 7, 1)]  # output tile 0, 1, 2, ...


class WarpRolesScene(Scene):
    """Warp specialization: a producer warpgroup (TMA loads) and two consumer warpgroups (wgmma,
    epilogue), cooperative (what Triton 3.6 builds) vs ping-pong (CUTLASS's alternative), drawn as one
    lane per warpgroup from ``kernels.schedule.warp_roles_timeline``."""

    TILES, K_STEPS, STAGES = 3, 4, 3
    LOAD_TIME, MMA_TIME, EPILOGUE_TIME = 1.0, 0.5, 1.5  # a whole tile's K step: 2 * MMA_TIME
    MODES = ("cooperative", "pingpong")
    LABELS = {"cooperative": "cooperative (what Triton 3.6 builds here)",
              "pingpong": "ping-pong (CUTLASS's alternative)"}
    # measured, not modelled: setmaxnreg.dec / .inc in Triton 3.6's compiled code of the course's
    # warp-specialized TMA matmul on the H100 (128x256x64 tile, 3 stages, 12 warps)
    PRODUCER_REGS, CONSUMER_REGS = 40, 232
    RUN_SECONDS = 16.0  # the slower schedule, played at a constant speed

    @classmethod
    def plans(cls) -> dict:
        """``{mode: WarpRolesPlan}`` for the two schedules the scene shows."""
        return {m: warp_roles_plan(cls.TILES, cls.K_STEPS, cls.STAGES, cls.LOAD_TIME, cls.MMA_TIME,
                                   cls.EPILOGUE_TIME, m) for m in cls.MODES}

    def construct(self):
        plans = self.plans()
        t_end = max(p.finish for p in plans.values())
        self.drawn_blocks = {m: [] for m in plans}  # (role, what, tile, k, start, end, label)
        self.drawn_idle = {m: [] for m in plans}  # (start, end): tensor cores with nothing to compute
        self.drawn_finish = {}  # mode -> the finish time written on that timeline
        self.drawn_regs = (self.PRODUCER_REGS, self.CONSUMER_REGS)

        title = text("Warp specialization: one producer, two consumer warpgroups", 30).to_edge(UP, buff=0.18)

        time = ValueTracker(0.0)
        slot_h, lane_h = 0.3, 0.42
        x0, x_right = -4.55, 6.6
        t_scale = (x_right - x0) / t_end
        label_x = x0 - 0.15
        sides, top = {}, 2.85
        for mode in self.MODES:
            plan = plans[mode]
            head = text(self.LABELS[mode], 21, YELLOW).move_to([-6.9, top + 0.25, 0], aligned_edge=LEFT)
            y_slot = [top - (i + 0.5) * slot_h for i in range(self.STAGES)]
            y_c0 = top - self.STAGES * slot_h - 0.1 - lane_h / 2
            y_lane = {"consumer0": y_c0, "consumer1": y_c0 - lane_h}
            bottom = y_c0 - 1.5 * lane_h - 0.1  # room for the tensor cores' idle bar above the axis
            prod_mid = top - self.STAGES * slot_h / 2
            labels = VGroup(
                VGroup(text("producer WG0", 16), text(f"TMA {ARROW} {self.STAGES} slots", 13, GREY_B))
                .arrange(DOWN, buff=0.06, aligned_edge=RIGHT).move_to([label_x, prod_mid, 0], aligned_edge=RIGHT),
                text("consumer WG1", 16).move_to([label_x, y_lane["consumer0"], 0], aligned_edge=RIGHT),
                text("consumer WG2", 16).move_to([label_x, y_lane["consumer1"], 0], aligned_edge=RIGHT),
            )
            lanes = VGroup(*[Line([x0, y, 0], [x_right, y, 0], stroke_width=1, stroke_color=GREY_D)
                             for y in (*y_slot, *y_lane.values())])
            axis = Line([x0, bottom, 0], [x_right + 0.1, bottom, 0], stroke_width=2, stroke_color=GREY_B)
            ticks = VGroup()
            for k in range(0, int(t_end) + 1, 2):
                x = x0 + k * t_scale
                ticks.add(Line([x, bottom, 0], [x, bottom - 0.06, 0], stroke_width=2, stroke_color=GREY_B))
                ticks.add(text(str(k), 12, GREY_B).move_to([x, bottom - 0.17, 0]))

            boxes, labs = VGroup(), VGroup()
            for i0, i1 in plan.tensor_idle:
                self.drawn_idle[mode].append((i0, i1))
                r = Rectangle(width=0.1, height=0.09, stroke_color=IDLE_COLOR, stroke_width=1,
                              fill_color=IDLE_COLOR)
                r.add_updater(grow_box(time, r, x0, t_scale, i0, i1, bottom + 0.05, 0.08))
                boxes.add(r)
            for sp in plan.spans:
                label = plan.label(sp)
                self.drawn_blocks[mode].append((sp.role, sp.what, sp.tile, sp.k, sp.start, sp.end, label))
                if sp.what == "load":
                    y, h = y_slot[sp.slot], slot_h * 0.86
                else:
                    y, h = y_lane[sp.role], lane_h * 0.86
                color = TILE_COLORS[sp.tile % len(TILE_COLORS)]
                epi = sp.what == "epilogue"
                r = Rectangle(width=0.1, height=h, stroke_color=color if epi else WHITE, stroke_width=1.5 if epi else 1,
                              fill_color=color)
                r.add_updater(grow_box(time, r, x0, t_scale, sp.start, sp.end, y, h,
                                       opacity=0.45 if epi else 0.9))
                boxes.add(r)
                lab = text(label, 12 if sp.what == "load" else 14, WHITE)
                lab.move_to([x0 + (sp.start + sp.end) / 2 * t_scale, y, 0])
                lab.add_updater(show_after(time, (sp.start + sp.end) / 2))
                labs.add(lab)

            finish = plan.finish
            self.drawn_finish[mode] = finish
            fin_line, fin = finish_marker(time, finish, x0 + finish * t_scale, top, bottom,
                                          [x_right, top + 0.25, 0], f"done at t = {fmt_t(finish)}")
            sides[mode] = dict(static=VGroup(head, labels, lanes, axis, ticks),
                               dynamic=[boxes, labs, fin_line, fin], top=top, bottom=bottom)
            top = bottom - 0.68

        # key, under the second timeline: the tiles' colours, the block letters, the register split
        def chip(color, opacity, h=0.2):
            return Rectangle(width=0.34, height=h, stroke_color=color, stroke_width=1, fill_color=color,
                             fill_opacity=opacity)
        row1 = VGroup(*[VGroup(chip(TILE_COLORS[t], 0.9), text(f"tile {t}", 15, GREY_B))
                        for t in range(self.TILES)])
        row1.add(text("L t.k: TMA load of tile t, step k    M t.k: wgmma on it    E t: epilogue (store)",
                      15, GREY_B))
        row1.add(VGroup(chip(IDLE_COLOR, 0.9, 0.09), text("tensor cores idle", 15, GREY_B)))
        for item in row1:
            if isinstance(item, VGroup):
                item.arrange(RIGHT, buff=0.1)
        row1.arrange(RIGHT, buff=0.3)
        row2 = text(f"Registers per thread (measured, setmaxnreg in Triton 3.6's code on H100): "
                    f"producer {self.PRODUCER_REGS}, consumers {self.CONSUMER_REGS}", 15, WHITE)
        key = VGroup(fit_width(row1, 13.6), fit_width(row2, 13.6)).arrange(DOWN, buff=0.14)
        key.move_to([0, sides[self.MODES[1]]["bottom"] - 0.72, 0])

        now = VGroup(*[Line([x0, sd["top"] + 0.05, 0], [x0, sd["bottom"], 0], stroke_width=2,
                            stroke_color=YELLOW) for sd in sides.values()])
        now.add_updater(lambda m: m.set_x(x0 + time.get_value() * t_scale))

        self.play(FadeIn(title), run_time=0.8)
        self.play(*[FadeIn(sd["static"]) for sd in sides.values()], FadeIn(key), run_time=1.0)
        for sd in sides.values():
            self.add(*sd["dynamic"])
        self.add(now)
        caption = self._caption(
            "Top: WG1 and WG2 each compute half of every tile (sharing the tensor cores), then both "
            "store it. Bottom: they take alternate tiles and use the tensor cores in turn.")
        self.play(FadeIn(caption), run_time=0.6)
        self.wait(1.5)

        _run_clock(self, time, t_end, self.RUN_SECONDS, [m for sd in sides.values() for m in sd["dynamic"]] + [now])

        a, b = plans[self.MODES[0]], plans[self.MODES[1]]
        final = self._caption(
            f"Cooperative: the tensor cores stop for every epilogue (done at t = {fmt_t(a.finish)}). "
            f"Ping-pong: one warpgroup's epilogue runs under the other's math (t = {fmt_t(b.finish)}).",
            color=YELLOW)
        self.play(FadeOut(now), Transform(caption, final), run_time=0.8)
        self.wait(4.5)

    _caption = staticmethod(KLoopScene._caption)


from .plan import FP4BlockPlan, fp4_block_plan  # noqa: E402  (chapter 07's scene)

SATURATED_COLOR = ManimColor("#e0533d")  # red: beyond e2m1's largest magnitude, clipped to 6
FLUSHED_COLOR = ManimColor("#e69a2e")  # orange: a nonzero value that became 0
MINUS = "\u2212"


def _signed(v, digits) -> str:
    s = f"{v:.{digits}f}"
    return s.replace("-", MINUS)


class FP4BlockScene(Scene):
    """One MXFP4 block: 32 weights share one power-of-two scale (e8m0) chosen from their largest
    magnitude, each is divided by it and rounded to a 4-bit e2m1 code, and the codes are packed two per
    byte. Every number comes from ``animations.plan.fp4_block_plan``, i.e. ``kernels.fp4``."""

    SEED, OUTLIER, SCALE = 0, 7.0, 0.03  # kernels.fp4.example_block(SEED, OUTLIER, SCALE)
    COLS = 16  # values per row of cells

    @classmethod
    def values(cls):
        from kernels import fp4

        return fp4.example_block(cls.SEED, cls.OUTLIER, cls.SCALE)

    @classmethod
    def plan(cls) -> FP4BlockPlan:
        return fp4_block_plan(cls.values())

    def construct(self):
        p = self.plan()
        n, cols = len(p.values), self.COLS
        self.drawn_values = list(p.values)
        self.drawn_scale = (p.exponent, p.scale_byte)
        self.drawn_scaled, self.drawn_landed, self.drawn_codes, self.drawn_bytes = [], [], [], []

        title = text("MXFP4: 32 weights share one exponent", 32).to_edge(UP, buff=0.2)
        cw, ch = 0.84, 0.5
        x_left = -cw * cols / 2
        y_rows = (2.35, 2.35 - ch - 0.08)

        def cell_center(i):
            return np.array([x_left + (i % cols + 0.5) * cw, y_rows[i // cols], 0])

        cells = VGroup(*[Rectangle(width=cw, height=ch, stroke_color=A_COLOR, stroke_width=1.5,
                                   fill_color=A_COLOR, fill_opacity=0.12).move_to(cell_center(i))
                         for i in range(n)])

        def labels(strings, colors=None, size=15, centers=None, width=cw, per_row=cols):
            """One Text per row of cells (cheaper to build than one per cell), its glyphs then split
            by field and each field centred in its cell (``centers``); a space makes no glyph."""
            centers = centers or [cell_center(i) for i in range(len(strings))]
            g = VGroup()
            for r0 in range(0, len(strings), per_row):
                fields = strings[r0:r0 + per_row]
                glyphs, k = list(text("   ".join(fields), size).submobjects), 0
                for i, f in enumerate(fields, start=r0):
                    m = len(f.replace(" ", ""))
                    chunk = VGroup(*glyphs[k:k + m])
                    k += m
                    chunk.set_color(colors[i] if colors else WHITE)
                    g.add(fit_width(chunk, width - 0.1).move_to(centers[i]))
                assert k == len(glyphs), "a field's glyph count does not match its characters"
            return g

        state = {"labels": labels([_signed(v, 3) for v in p.values]), "caption": None}

        def step(new_labels, caption, extra=(), run_time=0.9):
            """The cells flash while their numbers change (a swap, not a morph: 32 small texts
            morphing would cost far more to render than they show)."""
            self.play(cells.animate.set_fill(opacity=0.55), *extra, run_time=run_time / 2)
            if new_labels is not None:
                self.remove(state["labels"])
                self.add(new_labels)
                state["labels"] = new_labels
            if caption is not None:
                if state["caption"] is not None:
                    self.remove(state["caption"])
                state["caption"] = self._caption(*caption) if isinstance(caption, tuple) else self._caption(caption)
                self.add(state["caption"])
            self.play(cells.animate.set_fill(opacity=0.12), run_time=run_time / 2)

        head = text(f"a block of {n} weights (bf16: {2 * n} bytes)", 20, GREY_B)
        head.next_to(cells, UP, buff=0.12)
        self.play(FadeIn(title), FadeIn(cells), FadeIn(head), run_time=1.0)
        step(state["labels"], "Microscaling: the 32 values of a block share one scale, a power of two "
                              "stored in one byte (e8m0); each value keeps only 4 bits (e2m1).")
        self.wait(1.5)

        # ---- the shared scale, from the largest magnitude ----
        hot = cells[p.amax_index].copy().set_style(stroke_color=YELLOW, stroke_width=4, fill_opacity=0.0)
        info_y = y_rows[1] - ch / 2 - 0.55
        scale_txt = VGroup(
            text(f"largest magnitude {p.amax:.3f}:  scale = 2^(floor(log2 {p.amax:.3f}) {MINUS} 2) = "
                 f"2^{_signed(p.exponent, 0)}", 22, YELLOW),
            text(f"stored as one e8m0 byte: {_signed(p.exponent, 0)} + 127 = {p.scale_byte} = "
                 f"0x{p.scale_byte:02X}", 20, GREY_B),
        ).arrange(DOWN, buff=0.12)
        fit_width(scale_txt, 13.4).move_to([0, info_y - 0.2, 0])
        step(None, "The scale comes from the block's largest magnitude: minus 2 in the exponent puts that "
                   "value in e2m1's top binade, 4 to 8.", extra=(FadeIn(hot), FadeIn(scale_txt)))
        self.wait(2.0)

        # ---- divide by the scale ----
        self.drawn_scaled = list(p.scaled)
        step(labels([_signed(v, 2) for v in p.scaled]),
             f"Divide every value by 2^{_signed(p.exponent, 0)}: multiplying by a power of two only shifts "
             f"the exponent, so this step loses nothing.")
        self.wait(1.8)

        # ---- round to e2m1 ----
        grid = text("e2m1 magnitudes:  0   0.5   1   1.5   2   3   4   6", 20, B_COLOR)
        grid.next_to(scale_txt, DOWN, buff=0.3)
        colors = [SATURATED_COLOR if i in p.saturated else FLUSHED_COLOR if i in p.flushed else WHITE
                  for i in range(n)]
        self.drawn_landed = list(p.landed)
        sat = ", ".join(f"{p.scaled[i]:.2f}" for i in p.saturated)
        what = (f"{sat} is beyond 6 and saturates (red); " if p.saturated else "") + \
            f"{len(p.flushed)} small values become 0 (orange)."
        self.play(FadeIn(grid), run_time=0.6)
        step(labels([_signed(v, 1) if v != int(v) else _signed(v, 0) for v in p.landed], colors),
             f"Round each to the nearest e2m1 value (ties to even): {what}")
        self.wait(2.2)

        # ---- 4-bit codes ----
        self.drawn_codes = list(p.codes)
        codes = labels([p.bits(c) for c in p.codes], colors, size=16)
        step(codes, "Each value is now a 4-bit code: a sign bit, 2 exponent bits, 1 mantissa bit.")
        self.wait(1.5)

        # ---- pack two codes per byte ----
        byte_w = 2 * cw
        y_bytes = grid.get_bottom()[1] - 0.55
        byte_rows = (y_bytes, y_bytes - ch - 0.08)
        boxes, flies, centers = VGroup(), VGroup(), []
        for j, byte in enumerate(p.packed):
            first = 2 * j
            center = np.array([x_left + ((first % cols) // 2 + 0.5) * byte_w, byte_rows[first // cols], 0])
            centers.append(center)
            box = Rectangle(width=byte_w - 0.06, height=ch, stroke_color=C_COLOR, stroke_width=1.5,
                            fill_color=C_COLOR, fill_opacity=0.15).move_to(center)
            boxes.add(box)
            # the pair's two cells travel down: the first to the right half (low bits), the second left
            for k, side in ((first, RIGHT), (first + 1, LEFT)):
                fly = cells[k].copy().set_style(stroke_color=C_COLOR, fill_color=C_COLOR, fill_opacity=0.5)
                flies.add(fly)
            self.drawn_bytes.append(byte)
        hexes = labels([f"{p.bits(b >> 4)} {p.bits(b & 15)}" for b in p.packed], [C_COLOR] * len(p.packed),
                       centers=centers, width=byte_w, per_row=cols // 2)
        self.play(FadeIn(boxes), run_time=0.6)
        step(None, "Pack two codes per byte: the first value of each pair in the low 4 bits (right), the "
                   "second in the high 4 bits (left).")
        targets = []
        for j in range(len(p.packed)):
            c = boxes[j].get_center()
            targets += [c + RIGHT * byte_w / 4, c + LEFT * byte_w / 4]
        self.add(flies)
        self.play(*[f.animate.move_to(t).stretch_to_fit_width(byte_w / 2 - 0.06) for f, t in zip(flies, targets)],
                  run_time=1.6)
        self.remove(flies)
        self.add(hexes)
        total = p.stored_bytes
        step(None, (f"{n} values in {len(p.packed)} bytes of codes + 1 scale byte = {total} bytes "
                    f"({8 * total / n:g} bits per value; bf16 needs {2 * n}).", YELLOW))
        self.wait(3.5)

    _caption = staticmethod(KLoopScene._caption)


from .plan import OnlineSoftmaxPlan, OnlineSoftmaxStep, online_softmax_plan  # noqa: E402  (chapter 08's scene)

RESCALE_COLOR = ManimColor("#e0533d")  # red: alpha < 1, the sums so far shrink
INF = "\u221e"
SIGMA = "\u03a3"
ALPHA = "\u03b1"
DOT = "\u00b7"


def _num(v, digits) -> str:
    """``v`` with ``digits`` decimals, a real minus sign, ``-inf`` as ``−∞`` and no ``−0.00``."""
    if np.isinf(v):
        return (MINUS if v < 0 else "") + INF
    s = f"{v:.{digits}f}"
    if float(s) == 0:
        s = s.lstrip("-")
    return s.replace("-", MINUS)


def _rows_text(rows) -> str:
    """``(2,) -> 'row 2'``, ``(1, 3) -> 'rows 1 and 3'``, ``(0, 1, 3) -> 'rows 0, 1 and 3'``."""
    rows = [str(r) for r in rows]
    if len(rows) == 1:
        return f"row {rows[0]}"
    return f"rows {', '.join(rows[:-1])} and {rows[-1]}"


def field_labels(strings, centers, size=17, colors=None, width=None) -> VGroup:
    """One ``Text`` for all ``strings`` (cheaper to build than one each), its glyphs then split by
    field and each field centred on its point in ``centers`` (``fit_width`` to ``width`` if given).
    A field must not contain spaces."""
    glyphs, k, g = list(text("   ".join(strings), size).submobjects), 0, VGroup()
    for i, f in enumerate(strings):
        chunk = VGroup(*glyphs[k:k + len(f)])
        k += len(f)
        chunk.set_color(colors[i] if colors else WHITE)
        if width is not None:
            fit_width(chunk, width)
        g.add(chunk.move_to(centers[i]))
    assert k == len(glyphs), "a field's glyph count does not match its characters"
    return g


class OnlineSoftmaxScene(Scene):
    """The online softmax of flash attention: a block of query rows meets the keys one tile at a
    time, keeping per row a running maximum ``m``, a running sum ``l`` and an output ``acc``, both
    rescaled by ``alpha = exp(m_old - m_new)`` whenever the maximum moves; at the end ``acc / l`` is
    the softmax of the whole rows times ``V``. Every number comes from
    ``animations.plan.online_softmax_plan``, i.e. ``kernels.attention.online_softmax_steps``."""

    SEED, ROWS, KEYS, TILE, HEAD_DIM = 16, 4, 16, 4, 2

    @classmethod
    def plan(cls) -> OnlineSoftmaxPlan:
        return online_softmax_plan(cls.SEED, cls.ROWS, cls.KEYS, cls.TILE, cls.HEAD_DIM)

    def construct(self):
        p = self.plan()
        R, S, D, T = p.rows, p.keys, p.head_dim, p.tile
        self.drawn_scores = [list(r) for r in p.scores]
        self.drawn_values = [list(r) for r in p.values]
        self.drawn_steps, self.drawn_rings = [], []

        title = text("Online softmax: one row block, one tile of keys at a time", 30).to_edge(UP, buff=0.2)

        # ---- the scores (R x S, tiles marked), the values under their keys (drawn transposed) ----
        cw, ch = 0.44, 0.42
        x_left, y_top = -6.45, 2.45

        def cell(r, j, top=y_top):
            return np.array([x_left + (j + 0.5) * cw, top - (r + 0.5) * ch, 0])

        def boxes(n_rows, n_cols, centre, color, opacity=0.12):
            return VGroup(*[Rectangle(width=cw, height=ch, stroke_color=color, stroke_width=1.2,
                                      fill_color=color, fill_opacity=opacity).move_to(centre(r, j))
                            for r in range(n_rows) for j in range(n_cols)])

        s_cells = boxes(R, S, cell, A_COLOR, 0.05)
        s_labels = field_labels([_num(x, 0) for row in p.scores for x in row],
                                [cell(r, j) for r in range(R) for j in range(S)], 17)
        s_labels.set_opacity(0.4)
        tile_lines = VGroup(*[Line(cell(0, j) + (UP * ch + LEFT * cw) / 2, cell(R - 1, j) + (DOWN * ch + LEFT * cw) / 2,
                                   stroke_width=3, stroke_color=GREY_B) for j in range(T, S, T)])
        tile_heads = VGroup(*[text(f"tile {i}", 15, GREY_B).move_to(
            (cell(0, a) + cell(0, min(a + T, S) - 1)) / 2 + UP * (ch / 2 + 0.2)) for i, a in enumerate(range(0, S, T))])
        row_labs = VGroup(*[text(f"row {r}", 15, GREY_B).next_to(cell(r, 0), LEFT, buff=0.3) for r in range(R)])
        s_key = text("scores s", 18, A_COLOR).next_to(tile_heads, UP, buff=0.12).align_to(s_cells, LEFT)

        v_top = y_top - R * ch - 0.3

        def vcell(d, j):
            return cell(d, j, v_top)

        v_cells = boxes(D, S, vcell, B_COLOR, 0.05)
        v_labels = field_labels([_num(p.values[j][d], 0) for d in range(D) for j in range(S)],
                                [vcell(d, j) for d in range(D) for j in range(S)], 17)
        v_labels.set_opacity(0.4)
        v_lab = text("V\u1d40", 17, B_COLOR).next_to(v_cells, LEFT, buff=0.3)

        # ---- the running state of each row: m, alpha, l, acc ----
        col_w = {"m": 0.7, "a": 0.8, "l": 0.85, "acc": 0.85}
        xs, x = {}, 1.1
        for key in ("m", "a", "l"):
            xs[key] = x + col_w[key] / 2
            x += col_w[key] + 0.1
        xs["acc"] = [x + (d + 0.5) * col_w["acc"] for d in range(D)]

        def tcell(key, r, d=0):
            cx = xs[key][d] if key == "acc" else xs[key]
            return np.array([cx, cell(r, 0)[1], 0])

        def column(key, color, opacity=0.12):
            n = D if key == "acc" else 1
            return VGroup(*[Rectangle(width=col_w[key] - 0.04, height=ch, stroke_color=color, stroke_width=1.2,
                                      fill_color=color, fill_opacity=opacity).move_to(tcell(key, r, d))
                            for r in range(R) for d in range(n)])

        m_cells, a_cells = column("m", A_COLOR), column("a", GREY_C)
        l_cells, acc_cells = column("l", C_COLOR), column("acc", C_COLOR)
        head_y = y_top + 0.2
        heads = VGroup(
            text("m", 19, A_COLOR).move_to([xs["m"], head_y, 0]),
            text(ALPHA, 19, WHITE).move_to([xs["a"], head_y, 0]),
            text("l", 19, C_COLOR).move_to([xs["l"], head_y, 0]),
            text("acc", 19, C_COLOR).move_to([sum(xs["acc"]) / D, head_y, 0]),
        )
        state_key = text("what each row keeps", 18, GREY_B).move_to([sum(xs["acc"]) / D, 0, 0])
        state_key.next_to(heads, UP, buff=0.12).set_x((xs["m"] + xs["acc"][-1]) / 2)

        def m_labels(m):
            return field_labels([_num(v, 0) for v in m], [tcell("m", r) for r in range(R)], 17)

        def a_labels(alpha, colors=None):
            return field_labels([_num(a, 2) for a in alpha], [tcell("a", r) for r in range(R)], 17, colors)

        def l_labels(l):
            return field_labels([_num(v, 2) for v in l], [tcell("l", r) for r in range(R)], 17)

        def acc_labels(acc):
            return field_labels([_num(acc[r][d], 2) for r in range(R) for d in range(D)],
                                [tcell("acc", r, d) for r in range(R) for d in range(D)], 17,
                                width=col_w["acc"] - 0.1)

        first = p.steps[0]
        shown = {"m": m_labels(first.m_old), "l": l_labels([0.0] * R),
                 "acc": acc_labels([[0.0] * D for _ in range(R)]), "a": VGroup()}

        # ---- the update rule, each line lit while it happens ----
        rules = VGroup(
            text("for each tile of keys, in every row:", 18, GREY_B),
            text("m_new = max(m, largest score of the tile)", 18),
            text(f"{ALPHA} = exp(m {MINUS} m_new)      (1 if the max did not move)", 18),
            text(f"l = {ALPHA}{DOT}l + {SIGMA} exp(s {MINUS} m_new)", 18),
            text(f"acc = {ALPHA}{DOT}acc + {SIGMA} exp(s {MINUS} m_new){DOT}v", 18),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.13)
        rules.move_to([x_left, v_top - D * ch - 0.3, 0], aligned_edge=UP + LEFT)

        state = {"caption": None}

        def set_caption(s, color=WHITE):
            new = self._caption(s, color)
            if state["caption"] is None:
                self.play(FadeIn(new), run_time=0.5)
            else:
                self.remove(state["caption"])
                self.add(new)
            state["caption"] = new

        def swap(key, new):
            self.remove(shown[key])
            self.add(new)
            shown[key] = new

        self.play(FadeIn(title), FadeIn(s_cells), FadeIn(s_labels), FadeIn(tile_lines), FadeIn(tile_heads),
                  FadeIn(row_labs), FadeIn(s_key), FadeIn(v_cells), FadeIn(v_labels), FadeIn(v_lab), run_time=1.0)
        self.play(FadeIn(VGroup(m_cells, a_cells, l_cells, acc_cells, heads, state_key, shown["m"], shown["l"],
                                shown["acc"])), FadeIn(rules), run_time=0.8)
        set_caption(f"Flash attention never holds a whole row of scores. This block of {R} query rows meets the keys "
                    f"{T} at a time and keeps, per row, a running max m, a sum l and an output acc.")
        self.wait(2.5)

        frame = Rectangle(width=T * cw, height=R * ch, stroke_color=YELLOW, stroke_width=4)
        v_frame = Rectangle(width=T * cw, height=D * ch, stroke_color=YELLOW, stroke_width=3)
        rings = VGroup(*[Rectangle(width=cw - 0.08, height=ch - 0.08, stroke_color=YELLOW, stroke_width=3)
                         .move_to(cell(r, first.argmax[r])) for r in range(R)])
        lit = [rules[1]]
        for st in p.steps:
            self.drawn_steps.append({"start": st.start, "stop": st.stop, "m": list(st.m), "alpha": list(st.alpha),
                                     "l": list(st.l), "acc": [list(a) for a in st.acc]})
            self.drawn_rings.append(list(st.argmax))
            cols = range(st.start, st.stop)
            now_s = [s_cells[r * S + j] for r in range(R) for j in cols]
            now_sl = [s_labels[r * S + j] for r in range(R) for j in cols]
            now_v = [v_cells[d * S + j] for d in range(D) for j in cols]
            now_vl = [v_labels[d * S + j] for d in range(D) for j in cols]
            centre = (cell(0, st.start) + cell(R - 1, st.stop - 1)) / 2
            v_centre = (vcell(0, st.start) + vcell(D - 1, st.stop - 1)) / 2
            # 1. the tile arrives: its scores and values light up
            anims = [*(c.animate.set_fill(opacity=0.5) for c in now_s), *(c.animate.set_fill(opacity=0.4) for c in now_v),
                     *(lb.animate.set_opacity(1) for lb in now_sl + now_vl), rules[1].animate.set_color(YELLOW)]
            if st.index == 0:
                anims += [FadeIn(frame.move_to(centre)), FadeIn(v_frame.move_to(v_centre))]
            else:
                prev = p.steps[st.index - 1]
                anims += [frame.animate.move_to(centre), v_frame.animate.move_to(v_centre),
                          *(s_cells[r * S + j].animate.set_fill(opacity=0.2) for r in range(R)
                            for j in range(prev.start, prev.stop)),
                          *(v_cells[d * S + j].animate.set_fill(opacity=0.2) for d in range(D)
                            for j in range(prev.start, prev.stop)),
                          *(m.animate.set_color(WHITE) for m in lit)]
            set_caption(self._step_caption(st, T))
            self.play(*anims, run_time=0.7)
            # 2. the running maximum: the rows whose max moved flash, their ring jumps to the new largest score
            moved_m = [m_cells[r] for r in st.moved]
            ring_anims = ([FadeIn(rings)] if st.index == 0 else
                          [rings[r].animate.move_to(cell(r, st.argmax[r])) for r in st.moved])
            if moved_m or ring_anims:
                self.play(*(c.animate.set_fill(YELLOW, opacity=0.6) for c in moved_m), *ring_anims, run_time=0.45)
                swap("m", m_labels(st.m))
                self.play(*(c.animate.set_fill(A_COLOR, opacity=0.12) for c in moved_m), run_time=0.35)
            else:  # nothing moved: the rings stay where they are
                self.play(rings.animate.set_stroke(width=6), run_time=0.4)
                self.play(rings.animate.set_stroke(width=3), run_time=0.4)
            # 3. alpha: red where the sums so far must shrink
            shrink = [r for r in range(R) if st.alpha[r] < 1 and st.index > 0]
            colors = [GREY_B if st.index == 0 else WHITE for r in range(R)]
            self.play(rules[1].animate.set_color(WHITE), rules[2].animate.set_color(YELLOW),
                      *(a_cells[r].animate.set_fill(RESCALE_COLOR if r in shrink else GREY_C,
                                                    opacity=0.45 if r in shrink else 0.12) for r in range(R)),
                      run_time=0.3)
            swap("a", a_labels(st.alpha, colors))
            self.wait(0.25)
            # 4. l and acc: scaled by alpha, the tile's terms added
            sums = [*l_cells, *acc_cells]
            self.play(rules[2].animate.set_color(WHITE), rules[3].animate.set_color(YELLOW),
                      rules[4].animate.set_color(YELLOW), *(c.animate.set_fill(opacity=0.55) for c in sums),
                      run_time=0.4)
            swap("l", l_labels(st.l))
            swap("acc", acc_labels(st.acc))
            self.play(*(c.animate.set_fill(opacity=0.12) for c in sums), run_time=0.4)
            lit = [rules[3], rules[4]]
            self.wait(self._reading_time(st))

        # ---- the end: O = acc / l, and the softmax of the whole rows times V ----
        self.play(FadeOut(frame), FadeOut(v_frame), *(m.animate.set_color(WHITE) for m in lit), run_time=0.4)
        ow = 0.85
        out_top = y_top - R * ch - 0.15  # under the state table
        o_x = [1.1 + (d + 0.5) * ow for d in range(D)]
        ref_x = [o_x[-1] + ow / 2 + 1.2 + (d + 0.5) * ow for d in range(D)]

        def ocell(xc, r, d):
            return np.array([xc[d], out_top - 0.45 - (r + 0.5) * ch, 0])

        o_cells = VGroup(*[Rectangle(width=ow - 0.04, height=ch, stroke_color=C_COLOR, stroke_width=1.2,
                                     fill_color=C_COLOR, fill_opacity=0.3).move_to(ocell(o_x, r, d))
                           for r in range(R) for d in range(D)])
        ref_cells = VGroup(*[Rectangle(width=ow - 0.04, height=ch, stroke_color=B_COLOR, stroke_width=1.2,
                                       fill_color=B_COLOR, fill_opacity=0.3).move_to(ocell(ref_x, r, d))
                             for r in range(R) for d in range(D)])
        o_vals = field_labels([_num(p.out[r][d], 3) for r in range(R) for d in range(D)],
                              [ocell(o_x, r, d) for r in range(R) for d in range(D)], 17, width=ow - 0.1)
        ref_vals = field_labels([_num(p.reference[r][d], 3) for r in range(R) for d in range(D)],
                                [ocell(ref_x, r, d) for r in range(R) for d in range(D)], 17, width=ow - 0.1)
        o_head = text("O = acc / l", 18, C_COLOR).move_to([(o_x[0] + o_x[-1]) / 2, out_top - 0.2, 0])
        ref_head = text("softmax(s) @ V, whole rows", 18, B_COLOR).move_to([(ref_x[0] + ref_x[-1]) / 2, out_top - 0.2, 0])
        eq = text("=", 30, YELLOW).move_to([(o_x[-1] + ref_x[0]) / 2, ocell(o_x, (R - 1) / 2, 0)[1], 0])
        err = text(f"largest difference: {p.max_error:.1e} (float64 rounding)", 16, GREY_B)
        err.next_to(VGroup(o_cells, ref_cells), DOWN, buff=0.15)
        self.drawn_out = [list(r) for r in p.out]
        self.drawn_reference = [list(r) for r in p.reference]
        self.drawn_error = p.max_error
        set_caption(f"After the last tile, divide: O = acc / l. Every term now carries exp(s {MINUS} m) with the row's "
                    f"final max, so O is the softmax of the whole rows times V, from one pass over the keys.", YELLOW)
        self.play(FadeIn(o_cells), FadeIn(o_head), FadeIn(o_vals),
                  *(c.animate.set_fill(opacity=0.55) for c in [*l_cells, *acc_cells]), run_time=0.8)
        self.play(*(c.animate.set_fill(opacity=0.12) for c in [*l_cells, *acc_cells]),
                  FadeIn(ref_cells), FadeIn(ref_head), FadeIn(ref_vals), run_time=0.8)
        self.play(FadeIn(eq), FadeIn(err), run_time=0.5)
        self.wait(4.0)

    @staticmethod
    def _step_caption(st: OnlineSoftmaxStep, tile: int) -> str:
        i = st.index
        if i == 0:
            return (f"Tile 0: m is each row's largest score so far. l adds up exp(s {MINUS} m), never more than 1 "
                    f"a term (no overflow), and acc adds exp(s {MINUS} m){DOT}v. Nothing came before: {ALPHA} = 0.")
        if not st.moved:
            return (f"Tile {i}: no row finds a score above its max, so m stays and {ALPHA} = 1: the tile's "
                    f"terms are simply added to l and acc.")
        if len(st.moved) == 1:
            r = st.moved[0]
            return (f"Tile {i}: row {r}'s max moves from {_num(st.m_old[r], 0)} to {_num(st.m[r], 0)}. Its l and acc "
                    f"were summed with exp(s {MINUS} {_num(st.m_old[r], 0)}): times {ALPHA} = exp({_num(st.m_old[r], 0)} "
                    f"{MINUS} {_num(st.m[r], 0)}) = {_num(st.alpha[r], 2)} they become exp(s {MINUS} {_num(st.m[r], 0)}).")
        return (f"Tile {i}: {_rows_text(st.moved)} see a larger score, so their m moves up. Their l and acc were summed "
                f"with exp(s {MINUS} m_old); times {ALPHA} = exp(m_old {MINUS} m_new) they are as if m_new had been known.")

    @staticmethod
    def _reading_time(st: OnlineSoftmaxStep) -> float:
        """Seconds to read the caption of a step: longer where the maximum moved after the first tile."""
        if st.index == 0:
            return 2.4
        return 3.0 if st.moved else 1.6

    _caption = staticmethod(KLoopScene._caption)


class StreamKScene(Scene):
    """The ragged last wave, three ways (``kernels.schedule.schedule_pieces``, via
    ``animations.plan.sharing_plan``): whole tiles; the last wave's tiles split by K; stream-K's equal
    runs of (tile, K step) iterations. One time unit is one K step of one tile."""

    NUM_TILES, NUM_SMS, K_ITERS = 9, 4, 4  # 9 tiles on 4 SMs: two full waves and one tile left
    KINDS = (("data-parallel", "whole tiles"), ("split tail", "the last wave split by K"),
             ("stream-K", "stream-K: equal runs of K steps"))
    RUN_SECONDS = 14.0

    @classmethod
    def plans(cls) -> dict:
        return {kind: sharing_plan(kind, cls.NUM_TILES, cls.NUM_SMS, cls.K_ITERS) for kind, _ in cls.KINDS}

    def construct(self):
        plans = self.plans()
        P, k_iters = self.NUM_SMS, self.K_ITERS
        t_end = max(p.makespan for p in plans.values())
        self.drawn_spans = {kind: [] for kind in plans}  # (program, start, end, tile, k_begin, k_end)
        self.drawn_adds = {kind: [] for kind in plans}  # (tile, program, time) of each "+" marker
        self.drawn_finish = {}

        title = text("Sharing the last wave by K", 32).to_edge(UP, buff=0.2)
        sub = (f"{self.NUM_TILES} tiles of C, {k_iters} K steps each, on {P} SMs. Solid: a whole tile. "
               f"Faint: part of a tile's sum, to be added to the other parts (+).")
        subtitle = fit_width(text(sub, 19, GREY_B), 13.6).next_to(title, DOWN, buff=0.12)
        time = ValueTracker(0.0)
        row_h, row_gap, panel_gap = 0.25, 0.05, 0.55
        x0, t_scale = -5.6, 10.2 / t_end
        top = 2.35
        statics, dynamics, panels = [], [], {}
        for i, (kind, label) in enumerate(self.KINDS):
            plan = plans[kind]
            ptop = top - i * (P * (row_h + row_gap) + panel_gap)
            y_of = [ptop - (sm + 0.5) * (row_h + row_gap) for sm in range(P)]
            bottom = ptop - P * (row_h + row_gap)
            head = text(label, 19, YELLOW).move_to([x0, ptop + 0.2, 0], aligned_edge=LEFT)
            sm_labels = VGroup(*[text(f"SM {sm}", 13, GREY_B).move_to([x0 - 0.4, y_of[sm], 0]) for sm in range(P)])
            lanes = VGroup(*[Line([x0, y, 0], [x0 + t_end * t_scale, y, 0], stroke_width=1, stroke_color=GREY_D)
                             for y in y_of])
            blocks, labels = VGroup(), VGroup()
            for prog, start, end, tile, kb, ke in plan.spans:
                self.drawn_spans[kind].append((prog, start, end, tile, kb, ke))
                whole = (kb, ke) == (0, k_iters)
                color = WAVE_COLORS[tile % len(WAVE_COLORS)]
                rect = Rectangle(width=0.1, height=row_h, stroke_color=WHITE if whole else YELLOW,
                                 stroke_width=1, fill_color=color)
                rect.add_updater(grow_box(time, rect, x0, t_scale, start, end, y_of[prog], row_h,
                                          opacity=0.9 if whole else 0.35))
                blocks.add(rect)
                lab = text(str(tile) if whole else f"{tile}: k[{kb}:{ke}]", 12, WHITE)  # half-open, as in the code
                fit_width(lab, max(0.2, (end - start) * t_scale - 0.06))
                lab.move_to([x0 + (start + end) / 2 * t_scale, y_of[prog], 0])
                lab.add_updater(show_after(time, (start + end) / 2))
                labels.add(lab)
            for tile, prog, t in plan.adds:
                self.drawn_adds[kind].append((tile, prog, t))
                plus = text("+", 22, YELLOW).move_to([x0 + t * t_scale + 0.12, y_of[prog], 0])
                plus.add_updater(show_after(time, t - 1e-9))
                labels.add(plus)
            now = Line([x0, ptop + 0.03, 0], [x0, bottom, 0], stroke_width=2, stroke_color=YELLOW)
            now.add_updater(lambda m, x0=x0: m.set_x(x0 + time.get_value() * t_scale))
            statics.append(VGroup(head, sm_labels, lanes))
            dynamics += [blocks, labels, now]
            panels[kind] = dict(plan=plan, top=ptop, bottom=bottom, now=now)
        axis_y = panels[self.KINDS[-1][0]]["bottom"] - 0.05
        ticks = VGroup(Line([x0, axis_y, 0], [x0 + t_end * t_scale, axis_y, 0], stroke_width=2, stroke_color=GREY_B))
        for k in range(int(t_end) + 1):
            ticks.add(text(str(k), 13, GREY_B).move_to([x0 + k * t_scale, axis_y - 0.18, 0]))
        ticks.add(text("time (K steps)", 13, GREY_B).next_to(ticks[0], RIGHT, buff=0.1))

        self.play(FadeIn(title), FadeIn(subtitle), run_time=0.8)
        self.play(*[FadeIn(m) for m in statics], FadeIn(ticks), run_time=1.0)
        self.add(*dynamics)
        caption = self._caption(f"Top: whole tiles in waves; tile {self.NUM_TILES - 1} runs alone while "
                                f"{P - 1} SMs wait. Middle and bottom: the same work cut by K.")
        self.play(FadeIn(caption), run_time=0.6)
        self.wait(1.0)
        _run_clock(self, time, t_end, self.RUN_SECONDS, dynamics + statics)

        marks = []
        for kind, pn in panels.items():
            end = pn["plan"].makespan
            self.drawn_finish[kind] = end
            xe = x0 + end * t_scale
            marks.append(FadeOut(pn["now"]))
            marks.append(FadeIn(DashedLine([xe, pn["top"] + 0.03, 0], [xe, pn["bottom"], 0], stroke_width=2,
                                           stroke_color=YELLOW)))
            marks.append(FadeIn(text(f"done at {fmt_t(end)}", 16, YELLOW).move_to(
                [xe + 1.0, (pn["top"] + pn["bottom"]) / 2, 0])))
        self.play(*marks, run_time=0.8)
        dp, st, sk = (plans[k] for k, _ in self.KINDS)
        final = self._caption(
            f"Whole tiles: done at {fmt_t(dp.makespan)}. Split by K: {fmt_t(st.makespan)} and "
            f"{fmt_t(sk.makespan)}, paid for with {st.partial_pieces} and {sk.partial_pieces} partial sums "
            f"written to memory and added in a fixed order.", color=YELLOW)
        self.play(Transform(caption, final), run_time=0.8)
        self.wait(4.5)

    _caption = staticmethod(KLoopScene._caption)

