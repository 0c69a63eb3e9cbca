import param


class MandelbrotArgs(param.Parameterized):
    """Escape-iteration counts of a ``width`` x ``height`` view of the Mandelbrot set, cut into row bands.

    The defaults take a few seconds in pure Python on one core so pool, Dask and Cython timings differ
    visibly in a benchmark.
    """

    width = param.Integer(600, bounds=(1, 20_000), doc="Pixels per row (points on the real axis).")
    height = param.Integer(400, bounds=(1, 20_000), doc="Rows of pixels (points on the imaginary axis).")
    max_iter = param.Integer(1500, bounds=(1, 1_000_000), doc="Iterations after which a point counts as inside the set.")
    x_min = param.Number(-2.2, bounds=(-10.0, 10.0), doc="Left bound of the real axis.")
    x_max = param.Number(1.0, bounds=(-10.0, 10.0), doc="Right bound of the real axis.")
    y_min = param.Number(-1.2, bounds=(-10.0, 10.0), doc="Bottom bound of the imaginary axis.")
    y_max = param.Number(1.2, bounds=(-10.0, 10.0), doc="Top bound of the imaginary axis.")
    partitions = param.Integer(16, bounds=(1, 10_000), doc="Row bands the image is cut into (at most height).")
