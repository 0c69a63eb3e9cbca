import param


class MinimalArgs(param.Parameterized):
    """Sum the squares of ``partitions`` consecutive ranges of ``size`` integers."""

    partitions = param.Integer(4, bounds=(1, 10_000), doc="Number of ranges (partitions) to cut the work into.")
    size = param.Integer(20_000, bounds=(1, None), doc="Integers per range.")
