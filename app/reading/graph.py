"""The segmentation graph and its best path (the paper's Viterbi on MAP scores).

Nodes are the boundaries between primitives, 0 … P; a candidate piece of primitives a … b − 1
is an arc from a to b. Each arc costs the MAP term of the digit LeNet-5 reads in its piece,
−log P(digit), where P(i) ∝ exp(−y_i) and "none of these" ∝ exp(−j): a piece that looks like
no digit has most of its probability on "none" and costs much; plus PIECE_COST per piece,
which keeps two halves of a digit, each read as a 1, from beating the whole digit.
"""

import numpy as np

# Per piece, in nats (bench/read.py's sweep chose it on numbers of training digits).
PIECE_COST = 2.0
# A piece lower than this share of the line's height pays this much more (bench/read.py).
SHORT = 0.5
SHORT_COST = 10.0


def geometry_costs(heights: list[int], line: float, short: float = SHORT) -> np.ndarray:
    """What a piece pays for its shape: SHORT_COST when it is lower than `short` line heights,
    as a 5's bar or a stray stroke is and no digit of the line is."""
    return np.where(np.asarray(heights, np.float64) < short * line, SHORT_COST, 0.0)


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
