from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agilab_panel.runtime import BaseWorker

from . import airports

PHASES = ("taxi", "climb", "cruise", "descent")
EARTH_RADIUS_NM = 3440.065
RAD = np.pi / 180.0
CLIMB_FPM = 500.0  # a climb is a smoothed vertical rate above this ...
CLIMB_MIN_S = 60  # ... sustained for at least this many samples
RATE_WINDOW = 30  # samples averaged into the vertical rate
VARIABILITY_WINDOWS = (60, 300, 900)  # speed variability is averaged over these windows
TERMINAL_NM = 40.0  # airborne within this of an airport counts as terminal-area time
AT_AIRPORT_NM = 10.0  # taxiing within this of an airport counts as a visit


# -- numpy reference (the compiled kernel mirrors these, operation for operation) -------------------
def segments_numpy(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Great-circle distance (nm) from the previous sample to each sample, 0 for the first."""
    dlat = (lat[1:] - lat[:-1]) * RAD
    dlon = (lon[1:] - lon[:-1]) * RAD
    h = np.sin(dlat * 0.5) ** 2 + np.cos(lat[:-1] * RAD) * np.cos(lat[1:] * RAD) * np.sin(dlon * 0.5) ** 2
    seg = np.zeros(len(lat))
    seg[1:] = 2.0 * EARTH_RADIUS_NM * np.arcsin(np.sqrt(h))
    return seg


def count_climbs_numpy(rate: np.ndarray, threshold: float, min_len: int) -> int:
    """Runs of consecutive samples with ``rate > threshold`` lasting at least ``min_len`` samples."""
    edges = np.diff(np.concatenate(([0], (rate > threshold).astype(np.int8), [0])))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return int(np.count_nonzero(stops - starts >= min_len))


def nearest_airport_numpy(
    lat: np.ndarray, lon: np.ndarray, ap_lat: np.ndarray, ap_lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance (nm) to the nearest reference airport, for every sample.

    Scans every airport for every sample; ties go to the lower index.
    """
    lat_r, lon_r = lat * RAD, lon * RAD
    cos_lat = np.cos(lat_r)
    best_h, best = np.full(len(lat), np.inf), np.zeros(len(lat), dtype=np.int64)
    for k in range(len(ap_lat)):
        h = (np.sin((ap_lat[k] * RAD - lat_r) * 0.5) ** 2
             + cos_lat * np.cos(ap_lat[k] * RAD) * np.sin((ap_lon[k] * RAD - lon_r) * 0.5) ** 2)
        closer = h < best_h
        best_h, best = np.where(closer, h, best_h), np.where(closer, k, best)
    return best, 2.0 * EARTH_RADIUS_NM * np.arcsin(np.sqrt(best_h))


# -- the same three with frame operations only, for cuDF (which has no row loops) --------------------
def _segments_frame(lat: Any, lon: Any) -> Any:
    lat0, lon0 = lat.shift(1), lon.shift(1)
    h = np.sin((lat - lat0) * RAD * 0.5) ** 2 + np.cos(lat0 * RAD) * np.cos(lat * RAD) * np.sin((lon - lon0) * RAD * 0.5) ** 2
    return (2.0 * EARTH_RADIUS_NM * np.arcsin(np.sqrt(h))).fillna(0.0)


def _count_climbs_frame(rate: Any, threshold: float, min_len: int) -> int:
    up = rate > threshold
    run_id = (up & ~up.shift(1, fill_value=False)).astype("int64").cumsum()
    return int((run_id[up].value_counts() >= min_len).sum())


def _nearest_airport_frame(lat: Any, lon: Any, ap_lat: np.ndarray, ap_lon: np.ndarray) -> tuple[Any, Any]:
    lat_r, lon_r = lat * RAD, lon * RAD
    cos_lat = np.cos(lat_r)
    best_h, best = lat_r * 0.0 + np.inf, (lat_r * 0.0).astype("int64")
    for k in range(len(ap_lat)):
        h = (np.sin((ap_lat[k] * RAD - lat_r) * 0.5) ** 2
             + cos_lat * np.cos(ap_lat[k] * RAD) * np.sin((ap_lon[k] * RAD - lon_r) * 0.5) ** 2)
        closer = h < best_h
        best_h, best = h.where(closer, best_h), best.where(~closer, k)
    return best, 2.0 * EARTH_RADIUS_NM * np.arcsin(np.sqrt(best_h))


def _host(values: Any) -> np.ndarray:
    """A numpy copy of a pandas or cuDF column."""
    return values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values)


def read_telemetry(path: Path, lib: Any = pd) -> Any:
    """Read one file with pandas or cuDF; CSV floats are parsed exactly so both formats agree."""
    if path.suffix == ".csv":
        # pandas < 3 needs asking for exact parsing; pandas 3 does it by default and deprecates the option
        extra = {"float_precision": "round_trip"} if lib is pd and int(pd.__version__.split(".")[0]) < 3 else {}
        df = lib.read_csv(str(path), **extra)
        df["timestamp"] = lib.to_datetime(df["timestamp"])
        return df
    return lib.read_parquet(str(path))


def aggregate(df: Any, aircraft: int, kernel: Any = None) -> dict[str, Any]:
    """The summary row of one aircraft's telemetry.

    ``df`` is a pandas or cuDF frame: rolling windows and group-bys are frame operations, so the same
    code runs on either. ``kernel`` provides ``segments_nm``, ``count_climbs`` and ``nearest_airport``
    over numpy arrays (the numpy reference or the compiled module); None does them with frame
    operations (the cuDF path).
    """
    seconds = df["timestamp"].astype("datetime64[ns]").astype("int64") / 1e9
    dt = seconds.diff().fillna(0.0)
    raw_rate = (df["altitude_ft"].diff() / dt.where(dt > 0) * 60.0).fillna(0.0)
    rate = raw_rate.rolling(RATE_WINDOW, min_periods=1).mean()
    if kernel is None:
        seg = _segments_frame(df["lat"], df["lon"])
        climbs = _count_climbs_frame(rate, CLIMB_FPM, CLIMB_MIN_S)
        near, near_nm = _nearest_airport_frame(df["lat"], df["lon"], airports.LAT, airports.LON)
    else:
        lat, lon = _host(df["lat"]).astype(np.float64), _host(df["lon"]).astype(np.float64)
        seg = kernel.segments_nm(lat, lon)
        climbs = kernel.count_climbs(_host(rate).astype(np.float64), CLIMB_FPM, CLIMB_MIN_S)
        near, near_nm = kernel.nearest_airport(lat, lon, airports.LAT, airports.LON)
    df["seg_nm"], df["dt_s"], df["near_nm"] = seg, dt, near_nm
    speed, taxi = df["speed_kt"], df["phase"] == "taxi"
    variability = [float(speed.rolling(w).std().mean()) for w in VARIABILITY_WINDOWS]
    alt_band = df["altitude_ft"].rolling(60).max() - df["altitude_ft"].rolling(60).min()
    cruise = df["phase"] == "cruise"
    by_phase = df.groupby("phase").agg({"dt_s": "sum", "seg_nm": "sum"})
    per_minute = df.groupby((seconds // 60).astype("int64")).agg({"altitude_ft": "mean", "seg_nm": "sum"})
    visits = _host(near[taxi & (df["near_nm"] < AT_AIRPORT_NM)]).astype(np.int64)
    route = [airports.CODES[k] for i, k in enumerate(visits) if i == 0 or k != visits[i - 1]]
    row = {
        "aircraft": int(aircraft),
        "rows": int(len(df)),
        "distance_nm": float(df["seg_nm"].sum()),
        "duration_h": float(seconds.iloc[-1] - seconds.iloc[0]) / 3600.0,
        "max_altitude_ft": float(df["altitude_ft"].max()),
        "mean_speed_kt": float(speed.mean()),
        "max_speed_kt": float(speed.max()),
        "max_climb_fpm": float(rate.max()),
        "max_descent_fpm": float(-rate.min()),
        "climbs": int(climbs),
        "speed_variability_kt": float(np.mean(variability)),
        "cruise_altitude_band_ft": float(alt_band[cruise].mean()) if bool(cruise.any()) else 0.0,
        "max_minute_distance_nm": float(per_minute["seg_nm"].max()),
        "mean_minute_altitude_ft": float(per_minute["altitude_ft"].mean()),
        "terminal_time_s": float(df["dt_s"][~taxi & (df["near_nm"] < TERMINAL_NM)].sum()),
        "airports_visited": len(set(route)),
        "route": "-".join(route),
    }
    for phase in PHASES:
        present = phase in by_phase.index
        row[f"time_{phase}_s"] = float(by_phase.loc[phase, "dt_s"]) if present else 0.0
        row[f"distance_{phase}_nm"] = float(by_phase.loc[phase, "seg_nm"]) if present else 0.0
    return row


class _NumpyKernel:
    """The numpy reference under the compiled module's names."""

    segments_nm = staticmethod(segments_numpy)
    count_climbs = staticmethod(count_climbs_numpy)
    nearest_airport = staticmethod(nearest_airport_numpy)


class FlightTelemetryWorker(BaseWorker):
    """Aggregates one aircraft file per partition: numpy reference, Cython kernel, or cuDF."""

    def work_init(self) -> None:
        if self.use_rapids:
            self.cudf()  # fail at start, naming the host, when cuDF is missing
        if self.use_cython:
            self.compiled("flight_kernel")

    def work_pool(self, payload: dict) -> pd.DataFrame:
        path = self.data_in / payload["file"]
        if self.use_rapids:
            row = aggregate(read_telemetry(path, self.cudf()), payload["aircraft"])
        else:
            kernel = self.compiled("flight_kernel") if self.use_cython else _NumpyKernel
            row = aggregate(read_telemetry(path), payload["aircraft"], kernel)
        return pd.DataFrame([row])

    def work_done(self, results: list[tuple[str, Any]]) -> pd.DataFrame | None:
        """Concatenate the rows in plan order and write the run's metrics to the ``summary`` file.

        ``rows`` is the metric the args form previews (aircraft x rows per file), so the dashboard can
        show the preview and the value measured after RUN side by side.
        """
        out = super().work_done(results)
        if out is None:
            return None
        summary = {
            "aircraft": int(len(out)),
            "rows": int(out["rows"].sum()),
            "total_distance_nm": float(out["distance_nm"].sum()),
            "max_altitude_ft": float(out["max_altitude_ft"].max()),
            "climbs": int(out["climbs"].sum()),
        }
        self.write_summary(summary)  # data_out/<[tool.agilab] summary>
        return out
