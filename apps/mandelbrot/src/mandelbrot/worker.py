import numpy as np
import pandas as pd

from agilab_panel.runtime import BaseWorker


def grid_steps(x_min: float, x_max: float, y_min: float, y_max: float, width: int, height: int) -> tuple[float, float]:
    """Pixel size on each axis; both paths take it from here so they use the same doubles."""
    return (x_max - x_min) / width, (y_max - y_min) / height


def escape_counts(x_min: float, dx: float, y_min: float, dy: float, row_start: int, row_stop: int,
                  width: int, max_iter: int) -> list[list[int]]:
    """Escape iteration of every pixel of rows ``[row_start, row_stop)`` (``max_iter`` if it never escapes).

    Plain Python loops on purpose: this is the reference the compiled kernel must match exactly, and the
    slow path the benchmark compares against.
    """
    out = []
    for r in range(row_start, row_stop):
        cy = y_min + r * dy
        row = []
        for c in range(width):
            cx = x_min + c * dx
            zx = zy = 0.0
            n = 0
            while n < max_iter:
                zx2 = zx * zx
                zy2 = zy * zy
                if zx2 + zy2 > 4.0:
                    break
                zy = 2.0 * zx * zy + cy
                zx = zx2 - zy2 + cx
                n += 1
            row.append(n)
        out.append(row)
    return out


class MandelbrotWorker(BaseWorker):
    """Computes one row band per partition; cython mode runs the typed kernel, rapids mode needs cuDF first."""

    def work_init(self) -> None:
        if self.use_rapids:
            self.cudf()  # no GPU code here, but a rapids run on a host without cuDF must say so
        if self.use_cython:
            self.compiled("mandelbrot_kernel")  # fail at start, naming the host, not mid-run

    def counts(self, row_start: int, row_stop: int) -> np.ndarray:
        """Escape counts of a band as an int32 array of shape (rows, width)."""
        a = self.args
        width, height, max_iter = int(a["width"]), int(a["height"]), int(a["max_iter"])
        x_min, x_max, y_min, y_max = (float(a[k]) for k in ("x_min", "x_max", "y_min", "y_max"))
        dx, dy = grid_steps(x_min, x_max, y_min, y_max, width, height)
        grid = (x_min, dx, y_min, dy, row_start, row_stop, width, max_iter)
        if self.use_cython:
            out = np.zeros((row_stop - row_start, width), dtype=np.int32)
            self.compiled("mandelbrot_kernel").escape_counts(*grid, out)
            return out
        return np.array(escape_counts(*grid), dtype=np.int32).reshape(row_stop - row_start, width)

    def work_pool(self, payload: dict) -> pd.DataFrame:
        start, stop = int(payload["row_start"]), int(payload["row_stop"])
        counts = self.counts(start, stop)
        return pd.DataFrame({
            "row": np.arange(start, stop, dtype=np.int64),
            "iterations": counts.sum(axis=1, dtype=np.int64),
            "inside": (counts == int(self.args["max_iter"])).sum(axis=1).astype(np.int64),
        })
