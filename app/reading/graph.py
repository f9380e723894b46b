"""The segmentation graph and its best path (the paper's Viterbi on MAP scores).

Nodes are the boundaries between primitives, 0 … P; a candidate piece of primitives a … b − 1
is an arc from a to b. Each arc costs the MAP term of the digit LeNet-5 reads in its piece,
−log P(digit), where P(i) ∝ exp(−y_i) and "none of these" ∝ exp(−j): a piece that looks like
no digit has most of its probability on "none" and costs much; plus PIECE_COST per piece,
which keeps two halves of a digit, each read as a 1, from beating the whole digit.
"""

from dataclasses import dataclass

import numpy as np

# Per piece, in nats (bench/read.py's sweep chose it on numbers of training digits).
PIECE_COST = 3.0
# The paper's heuristics as costs, in nats, chosen by bench/read.py's sweep on numbers of
# training digits. A piece lower than SHORT of the line's height pays SHORT_COST (a 5's bar or
# a stray stroke alone); a piece made of strokes with paper between their columns pays GAP_COST
# per line height of that paper (a 1 and its neighbour, glued into one wide digit); a piece
# wider than WIDE line heights pays WIDE_COST per line height beyond it.
SHORT = 0.5
SHORT_COST = 10.0
GAP_COST = 20.0
WIDE = 1.0
WIDE_COST = 10.0
# A piece of strokes standing side by side, with no ink joining them, pays APART_COST times
# the share of the narrower's columns the other does not share: a 1 written close to the next
# digit, glued to it, often reads as one confident digit.
APART_COST = 6.0


@dataclass(frozen=True)
class Geometry:
    """The weights of the geometry terms (graph.geometry_costs)."""

    short_cost: float = SHORT_COST
    gap_cost: float = GAP_COST
    wide_cost: float = WIDE_COST
    apart_cost: float = APART_COST


GEOMETRY = Geometry()


def geometry_costs(shapes: np.ndarray, weights: Geometry = GEOMETRY) -> np.ndarray:
    """What each piece pays for its shape: `shapes` float (N, 4), each piece's height, width
    and widest inner gap of paper, in line heights, and how far its strokes stand apart."""
    height, width, gap, apart = np.asarray(shapes, np.float64).reshape(-1, 4).T
    short = np.where(height < SHORT, weights.short_cost, 0.0)
    wide = weights.wide_cost * np.maximum(width - WIDE, 0.0)
    return short + weights.gap_cost * gap + wide + weights.apart_cost * apart


def piece_costs(distances: np.ndarray, j: float) -> np.ndarray:
    """−log P(nearest digit) of each piece's (N, 10) distances, by a log-sum-exp."""
    y = distances.astype(np.float64)
    low = np.minimum(y.min(axis=1), j)
    total = np.exp(low[:, None] - y).sum(axis=1) + np.exp(low - j)
    return y.min(axis=1) - low + np.log(total)


def best_path(
    spans: list[tuple[int, int]], costs: np.ndarray, count: int, piece_cost: float = PIECE_COST
) -> tuple[list[int], float]:
    """The pieces (indices into `spans`, each (first, last) primitive) that cover primitives
    0 … count − 1 once each, left to right, at the least total cost; and that cost."""
    best = np.full(count + 1, np.inf)
    best[0] = 0.0
    back = [-1] * (count + 1)
    arcs: list[list[int]] = [[] for _ in range(count + 1)]
    for index, (_, last) in enumerate(spans):
        arcs[last].append(index)
    for node in range(1, count + 1):
        for index in arcs[node]:
            total = best[spans[index][0]] + costs[index] + piece_cost
            if total < best[node]:
                best[node], back[node] = total, index
    path, node = [], count
    while node > 0:
        path.append(back[node])
        node = spans[back[node]][0]
    return path[::-1], float(best[count])
