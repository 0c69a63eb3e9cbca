from agilab_panel.runtime import BaseManager, Partition

from .worker import escape_counts, grid_steps

PROBE_ROWS = 4  # rows sampled per band to estimate its cost
PROBE_COLS = 32  # columns sampled per sampled row
PROBE_ITER_CAP = 2_000  # a probe point still bounded at this count is costed as max_iter


def bands(height: int, partitions: int) -> list[tuple[int, int]]:
    """Split ``height`` rows into ``partitions`` contiguous bands whose sizes differ by at most one."""
    return [(i * height // partitions, (i + 1) * height // partitions) for i in range(partitions)]


class MandelbrotManager(BaseManager):
    """Cuts the image into row bands weighted by their estimated iteration cost.

    Points inside the set cost ``max_iter`` iterations while most outside points escape at once, so
    bands through the middle of the set are much heavier than bands at the edge: a small probe on a
    coarse grid gives the balancer weights that follow the real work instead of the pixel count.
    """

    def _check(self) -> None:
        a = self.args
        if not a.x_min < a.x_max:
            raise ValueError(f"x_min ({a.x_min}) must be less than x_max ({a.x_max})")
        if not a.y_min < a.y_max:
            raise ValueError(f"y_min ({a.y_min}) must be less than y_max ({a.y_max})")
        if a.partitions > a.height:
            raise ValueError(f"partitions ({a.partitions}) must not exceed height ({a.height}): a band needs a row")

    def estimated_cost(self, row_start: int, row_stop: int) -> float:
        """Pixels in the band times one plus the mean escape count of a coarse sample of them."""
        a = self.args
        dx, dy = grid_steps(a.x_min, a.x_max, a.y_min, a.y_max, a.width, a.height)
        rows = row_stop - row_start
        cap = min(a.max_iter, PROBE_ITER_CAP)
        row_pick = sorted({row_start + k * rows // PROBE_ROWS for k in range(min(PROBE_ROWS, rows))})
        col_pick = sorted({k * a.width // PROBE_COLS for k in range(min(PROBE_COLS, a.width))})
        counts = []
        for r in row_pick:
            for c in col_pick:
                n = escape_counts(a.x_min + c * dx, dx, a.y_min, dy, r, r + 1, 1, cap)[0][0]
                counts.append(a.max_iter if n >= cap else n)
        return float(rows * a.width) * (1.0 + sum(counts) / len(counts))

    def partitions(self) -> list[Partition]:
        self._check()
        return [
            Partition(
                label=f"rows-{start:05d}-{stop - 1:05d}",
                weight=self.estimated_cost(start, stop),
                payload={"row_start": start, "row_stop": stop},
            )
            for start, stop in bands(self.args.height, self.args.partitions)
        ]
