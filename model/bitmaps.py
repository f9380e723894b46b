"""The fixed ±1 codes of LeNet-5's output RBF units, drawn as 7×12 bitmaps of the digits.

The paper (Section II-B, Fig. 3) sets each output unit's parameter vector by hand to a
stylised picture of its digit on a 7×12 grid, so that F6 is trained to draw the digit.
Ink is +1 and paper −1. Strokes are two pixels wide where they can be, and the
shapes were adjusted until every pair of codes differs in at least 15 of the 84 pixels
(squared distance ≥ 60): the closest pairs, 2/7 and 5/9, are still far apart compared
with the distance a trained network leaves between F6 and its target.
"""

import numpy as np

WIDTH, HEIGHT = 7, 12

DIGIT_BITMAPS: tuple[tuple[str, ...], ...] = (
    (  # 0
        ".......",
        "..###..",
        ".##.##.",
        "##...##",
        "##...##",
        "##...##",
        "##...##",
        "##...##",
        ".##.##.",
        "..###..",
        ".......",
        ".......",
    ),
    (  # 1
        ".......",
        "...##..",
        "..###..",
        ".####..",
        "...##..",
        "...##..",
        "...##..",
        "...##..",
        "...##..",
        ".######",
        ".......",
        ".......",
    ),
    (  # 2
        ".......",
        ".#####.",
        "##...##",
        ".....##",
        "....##.",
        "...##..",
        "..##...",
        ".##....",
        "##.....",
        "#######",
        ".......",
        ".......",
    ),
    (  # 3
        ".......",
        "#######",
        ".....##",
        "....##.",
        "...##..",
        "..####.",
        ".....##",
        ".....##",
        "##...##",
        ".#####.",
        ".......",
        ".......",
    ),
    (  # 4
        ".......",
        "....##.",
        "...###.",
        "..#.##.",
        ".#..##.",
        "#...##.",
        "#######",
        "....##.",
        "....##.",
        "....##.",
        ".......",
        ".......",
    ),
    (  # 5
        ".......",
        "#######",
        "##.....",
        "##.....",
        "##.....",
        "######.",
        ".....##",
        ".....##",
        "#....##",
        "######.",
        ".......",
        ".......",
    ),
    (  # 6
        ".......",
        "...###.",
        "..##...",
        ".##....",
        "##.....",
        "######.",
        "##...##",
        "##...##",
        "##...##",
        ".#####.",
        ".......",
        ".......",
    ),
    (  # 7
        ".......",
        "#######",
        ".....##",
        ".....##",
        "....##.",
        "...##..",
        "..##...",
        "..##...",
        "..##...",
        "..##...",
        ".......",
        ".......",
    ),
    (  # 8
        ".......",
        ".#####.",
        "##...##",
        "##...##",
        ".##.##.",
        "..###..",
        ".##.##.",
        "##...##",
        "##...##",
        ".#####.",
        ".......",
        ".......",
    ),
    (  # 9
        ".......",
        ".#####.",
        "##...##",
        "##...##",
        "##...##",
        ".######",
        ".....##",
        ".....##",
        "....##.",
        ".####..",
        ".......",
        ".......",
    ),
)


def rbf_codes() -> np.ndarray:
    """The ten 84-component ±1 codes, one row per digit, read row by row from the bitmaps."""
    codes = np.array(
        [[1.0 if ch == "#" else -1.0 for row in bitmap for ch in row] for bitmap in DIGIT_BITMAPS],
        dtype=np.float32,
    )
    assert codes.shape == (10, WIDTH * HEIGHT)
    return codes
