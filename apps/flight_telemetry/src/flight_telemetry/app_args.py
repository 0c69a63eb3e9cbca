import param


class FlightTelemetryArgs(param.Parameterized):
    """Generate one telemetry file per aircraft (1 Hz samples), then aggregate each file to a summary row.

    The data is synthetic and seeded, so every host and every mode sees the same files and produces
    the same output.
    """

    n_aircraft = param.Integer(16, bounds=(1, 10_000), doc="Aircraft, hence telemetry files and partitions.")
    rows_per_file = param.Integer(100_000, bounds=(100, 50_000_000), doc="Samples (one per second) per aircraft.")
    seed = param.Integer(42, bounds=(0, 2**31 - 1), doc="Seed of the generator; aircraft i uses seed + i.")
    file_format = param.Selector(default="parquet", objects=["parquet", "csv"], doc="Format of the generated files.")
