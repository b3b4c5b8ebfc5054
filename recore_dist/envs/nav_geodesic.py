"""Geodesic shortest paths among inflated wall boxes, and the SR / SPL aggregation (pure numpy).

Geodesic distances are exact shortest paths for a point among the wall boxes inflated by
``PLAN_MARGIN = 0.1`` m (square inflation): a visibility graph over the corners of the inflated
boxes (:class:`GeodesicPlanner`) with all-pairs corner distances (Floyd-Warshall) precomputed per
scene; per episode the goal's distance field is one min-plus product, and the distance from any
point is then one vectorised visibility query (~0.1 ms). A straight corridor therefore gives exactly the Euclidean
distance. The margin is smaller than the robot radius (0.17 m) so that the robot centre can never
be inside an inflated box (0.1 * sqrt(2) < 0.17); paths may cut wall corners by a few centimetres
more than the robot could, so ``L`` slightly underestimates the robot's best path (SPL is
conservative by the same amount).

:func:`navigation_metrics` aggregates success rate and SPL over finished episodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np

from recore_dist.envs.nav_layout import CELL, PLAN_MARGIN, Layout

# -- geodesic planner --------------------------------------------------------------------------
def segments_blocked(p0: np.ndarray, p1: np.ndarray, rects: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """Whether each segment ``p0[k] -> p1[k]`` passes through the open interior of any rect.

    ``p0``, ``p1``: ``[S, 2]``; ``rects``: ``[R, 4]`` as ``(xmin, ymin, xmax, ymax)``. Rects are
    shrunk by ``eps`` so that segments running along a rect's edge or touching its corner are free
    (slab / Liang-Barsky clipping, vectorised over segments x rects).
    """
    p0 = np.asarray(p0, np.float64)[:, None, :]
    d = np.asarray(p1, np.float64)[:, None, :] - p0
    if len(rects) == 0:
        return np.zeros(p0.shape[0], bool)
    lo = rects[None, :, :2] + eps
    hi = rects[None, :, 2:] - eps
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo - p0) / d
        t2 = (hi - p0) / d
    tmin = np.minimum(t1, t2)
    tmax = np.maximum(t1, t2)
    flat = np.abs(d) < 1e-12
    inside = (p0 > lo) & (p0 < hi)
    tmin = np.where(flat, np.where(inside, -np.inf, np.inf), tmin)
    tmax = np.where(flat, np.where(inside, np.inf, -np.inf), tmax)
    t_enter = np.maximum(np.maximum(tmin[..., 0], tmin[..., 1]), 0.0)
    t_exit = np.minimum(np.minimum(tmax[..., 0], tmax[..., 1]), 1.0)
    return np.any(t_enter < t_exit, axis=1)


@dataclass
class GoalField:
    """Geodesic distances from every graph vertex to one goal (with Dijkstra predecessors)."""

    goal: np.ndarray
    dist: np.ndarray  # [V]
    pred: np.ndarray  # [V]; -1 = straight to the goal


class GeodesicPlanner:
    """Exact shortest paths for a point among the layout's wall boxes inflated by ``margin``.

    Vertices are the corners of the inflated boxes that lie inside the maze and outside every
    other inflated box; corner-to-corner visibility and all-pairs distances are computed once.
    """

    def __init__(self, layout: Layout, margin: float = PLAN_MARGIN):
        self.layout = layout
        self.margin = float(margin)
        boxes = layout.wall_boxes()
        self.rects = boxes + np.array([-margin, -margin, margin, margin])
        corners = np.concatenate(
            [self.rects[:, [0, 1]], self.rects[:, [0, 3]], self.rects[:, [2, 1]], self.rects[:, [2, 3]]]
        )
        half = layout.n * CELL / 2.0
        inside_maze = np.all(np.abs(corners) < half, axis=1)
        in_rect = np.any(
            (corners[:, None, 0] > self.rects[None, :, 0] + 1e-9)
            & (corners[:, None, 0] < self.rects[None, :, 2] - 1e-9)
            & (corners[:, None, 1] > self.rects[None, :, 1] + 1e-9)
            & (corners[:, None, 1] < self.rects[None, :, 3] - 1e-9),
            axis=1,
        )
        verts = corners[inside_maze & ~in_rect]
        self.vertices = np.unique(np.round(verts, 9), axis=0)
        v = len(self.vertices)
        iu, ju = np.triu_indices(v, k=1)
        blocked = segments_blocked(self.vertices[iu], self.vertices[ju], self.rects)
        w = np.full((v, v), np.inf)
        lengths = np.linalg.norm(self.vertices[iu] - self.vertices[ju], axis=1)
        w[iu[~blocked], ju[~blocked]] = lengths[~blocked]
        w[ju[~blocked], iu[~blocked]] = lengths[~blocked]
        np.fill_diagonal(w, 0.0)
        self.weights = w
        self.all_pairs = _floyd_warshall(w)

    def visible(self, p: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Which ``targets [T, 2]`` are visible from point ``p``."""
        p = np.asarray(p, np.float64)
        return ~segments_blocked(np.broadcast_to(p, targets.shape), targets, self.rects)

    def goal_field(self, goal: np.ndarray) -> GoalField:
        goal = np.asarray(goal, np.float64)
        v = len(self.vertices)
        direct = np.where(self.visible(goal, self.vertices), np.linalg.norm(self.vertices - goal, axis=1), np.inf)
        # dist[c] = min over vertices c' seen from the goal of |goal - c'| + APSP[c', c]
        via = direct[:, None] + self.all_pairs
        first = np.argmin(via, axis=0) if v else np.zeros(0, np.int64)
        dist = via[first, np.arange(v)] if v else np.zeros(0)
        # predecessor towards the goal: walk Dijkstra-style on the weights for path extraction
        pred = np.full(v, -1, np.int64)
        for c in range(v):
            if not np.isfinite(dist[c]) or dist[c] == direct[c]:
                continue
            cand = self.weights[c] + dist
            cand[c] = np.inf
            pred[c] = int(np.argmin(cand))
        return GoalField(goal=goal, dist=dist, pred=pred)

    def free_point(self, p: np.ndarray) -> np.ndarray:
        """``p`` itself if it is outside every inflated box, else the nearest point just outside.

        The robot centre cannot enter the default inflation (see the module docstring), but a
        planner with a larger margin (a scripted controller's) can see it inside a box.
        """
        p = np.asarray(p, np.float64)
        lo, hi = self.rects[:, :2], self.rects[:, 2:]
        containing = np.all((p > lo) & (p < hi), axis=1)
        if not containing.any():
            return p
        step = 1e-6
        cands = []
        for x0, y0, x1, y1 in self.rects[containing]:
            cands += [(x0 - step, p[1]), (x1 + step, p[1]), (p[0], y0 - step), (p[0], y1 + step)]
        cands = np.asarray(cands)
        free = ~np.any(np.all((cands[:, None] > lo[None]) & (cands[:, None] < hi[None]), axis=2), axis=1)
        if not free.any():  # a corner region of overlapping boxes: take the nearest corner vertex
            cands = self.vertices if len(self.vertices) else cands
            free = np.ones(len(cands), bool)
        d = np.where(free, np.linalg.norm(cands - p, axis=1), np.inf)
        return cands[int(np.argmin(d))]

    def distance(self, p: np.ndarray, gf: GoalField) -> float:
        """Geodesic distance from ``p`` to the field's goal.

        A point inside an inflated box is first moved to the nearest free point (that offset is
        added to the distance).
        """
        p = np.asarray(p, np.float64)
        q = self.free_point(p)
        offset = float(np.linalg.norm(q - p))
        targets = np.concatenate([gf.goal[None], self.vertices])
        vis = self.visible(q, targets)
        if vis[0]:
            return offset + float(np.linalg.norm(gf.goal - q))
        if len(self.vertices) == 0:
            return math.inf
        costs = np.where(vis[1:], np.linalg.norm(self.vertices - q, axis=1) + gf.dist, np.inf)
        return offset + float(costs.min())

    def path(self, p: np.ndarray, gf: GoalField) -> np.ndarray:
        """Waypoints ``[K, 2]`` of a shortest path from ``p`` (excluded) to the goal (included)."""
        p = np.asarray(p, np.float64)
        q = self.free_point(p)
        head = [q] if np.any(q != p) else []
        targets = np.concatenate([gf.goal[None], self.vertices])
        vis = self.visible(q, targets)
        if vis[0] or len(self.vertices) == 0:
            return np.asarray(head + [gf.goal])
        costs = np.where(vis[1:], np.linalg.norm(self.vertices - q, axis=1) + gf.dist, np.inf)
        node = int(np.argmin(costs))
        if not np.isfinite(costs[node]):
            return np.asarray(head + [gf.goal])
        out = head
        for _ in range(len(self.vertices) + 1):
            out.append(self.vertices[node])
            if gf.pred[node] < 0:
                break
            node = int(gf.pred[node])
        out.append(gf.goal)
        return np.asarray(out)


def _floyd_warshall(w: np.ndarray) -> np.ndarray:
    d = w.copy()
    for k in range(len(d)):
        np.minimum(d, d[:, k : k + 1] + d[k : k + 1, :], out=d)
    return d


def shortest_path_length(layout: Layout, start: np.ndarray, goal: np.ndarray, margin: float = PLAN_MARGIN) -> float:
    """Geodesic start-goal distance in a layout (see :class:`GeodesicPlanner`)."""
    planner = GeodesicPlanner(layout, margin)
    return planner.distance(np.asarray(start, float), planner.goal_field(np.asarray(goal, float)))


def navigation_metrics(episodes: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Success rate and mean SPL over finished episodes.

    ``episodes``: the ``info`` dicts of episode-ending steps (or any dicts with ``success`` and
    ``spl``); dicts without both keys (infos of intermediate steps) are skipped. Returns
    ``{"success_rate", "spl", "num_episodes"}`` (NaN rates when there are no episodes).
    """
    done = [e for e in episodes if "success" in e and "spl" in e]
    if not done:
        return {"success_rate": float("nan"), "spl": float("nan"), "num_episodes": 0}
    success = np.array([float(bool(e["success"])) for e in done])
    spl = np.array([float(e["spl"]) for e in done])
    return {"success_rate": float(success.mean()), "spl": float(spl.mean()), "num_episodes": len(done)}
