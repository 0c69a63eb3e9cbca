import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agilab_panel.fsutil import atomic_path
from agilab_panel.runtime import BaseManager, Partition

from . import airports

PHASES = ("taxi", "climb", "cruise", "descent")
MANIFEST = "manifest.json"
GENERATOR_VERSION = 1  # bump when generate_aircraft changes: existing files are then regenerated
EPOCH = np.datetime64("2024-01-01T00:00:00", "s")
LEG_RANGE_NM = (300.0, 4000.0)  # a leg goes to a random airport this far away
RAD = np.pi / 180.0


def _smooth_noise(rng: np.random.Generator, n: int, window: int) -> np.ndarray:
    """Correlated noise with unit-ish spread: white noise averaged over ``window`` samples (gusts, not jitter)."""
    white = rng.standard_normal(n + window - 1)
    return np.convolve(white, np.ones(window) / np.sqrt(window), mode="valid")


def _gc_nm(a: int, b: int) -> float:
    la, lb = airports.LAT[a] * RAD, airports.LAT[b] * RAD
    h = np.sin((lb - la) / 2) ** 2 + np.cos(la) * np.cos(lb) * np.sin((airports.LON[b] - airports.LON[a]) * RAD / 2) ** 2
    return float(2 * 3440.065 * np.arcsin(np.sqrt(h)))


def _unit(a: int) -> np.ndarray:
    la, lo = airports.LAT[a] * RAD, airports.LON[a] * RAD
    return np.array([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def _taxi(rng: np.random.Generator, a: int, step_nm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A wander around airport ``a`` that starts and ends at its reference point (a Brownian bridge)."""
    hdg = rng.uniform(0, 2 * np.pi) + np.cumsum(0.05 * rng.standard_normal(len(step_nm)))
    north, east = np.cumsum(step_nm * np.cos(hdg)), np.cumsum(step_nm * np.sin(hdg))
    ramp = np.linspace(0.0, 1.0, len(step_nm))
    north, east = north - ramp * north[-1], east - ramp * east[-1]
    return airports.LAT[a] + north / 60.0, airports.LON[a] + east / (60.0 * np.cos(airports.LAT[a] * RAD))


def _leg(rng: np.random.Generator, a: int, b: int) -> dict[str, np.ndarray]:
    """One flight from airport ``a`` to ``b``: taxi, climb, cruise, descent, taxi, about one sample per second.

    Cruise lasts as long as the great-circle distance needs at the chosen speed; airborne samples
    move along the great circle (with a little lateral wander) at the rate the speed profile gives.
    """
    dist, v_cruise = _gc_nm(a, b), float(rng.uniform(430, 490))
    limits = ((300, 900), (900, 1800), (900, 1800), (300, 600))  # taxi out, climb, descent, taxi in (s)
    d_taxi_out, d_climb, d_desc, d_taxi_in = (int(rng.integers(lo, hi)) for lo, hi in limits)
    climb_nm = d_climb * (160 + v_cruise) / 2 / 3600
    desc_nm = d_desc * (v_cruise + 140) / 2 / 3600
    d_cruise = max(300, int((dist - climb_nm - desc_nm) * 3600 / v_cruise))
    durations = (d_taxi_out, d_climb, d_cruise, d_desc, d_taxi_in)
    n = sum(durations)
    bounds = np.cumsum((0,) + durations)
    phase = np.repeat(np.array([0, 1, 2, 3, 0], dtype=np.int8), durations)
    alt_a, alt_b, alt_c = airports.ELEVATION_FT[a], airports.ELEVATION_FT[b], rng.uniform(28_000, 41_000)
    step = np.arange(n)
    altitude = np.interp(step, bounds[[0, 1, 2, 3, 4, 5]], [alt_a, alt_a, alt_c, alt_c, alt_b, alt_b])
    speed = np.interp(step, [0, bounds[1] - 1, bounds[1], bounds[2], bounds[3], bounds[4] - 1, bounds[4], n],
                      [5, 15, 160, v_cruise, v_cruise, 140, 20, 5])
    airborne = (phase != 0)
    speed = np.clip(speed + np.where(airborne, 4.0, 2.0) * _smooth_noise(rng, n, 20), 0.0, None)
    dt = 1 + np.where(rng.random(n) < 0.005, rng.integers(1, 5, n), 0)
    step_nm = speed * dt / 3600.0
    lat, lon = np.empty(n), np.empty(n)
    lat[: bounds[1]], lon[: bounds[1]] = _taxi(rng, a, step_nm[: bounds[1]])
    lat[bounds[4]:], lon[bounds[4]:] = _taxi(rng, b, step_nm[bounds[4]:])
    frac = np.cumsum(step_nm[bounds[1]: bounds[4]])
    frac /= frac[-1]
    ua, ub = _unit(a), _unit(b)
    omega = np.arccos(np.clip(ua @ ub, -1.0, 1.0))
    p = (np.sin((1 - frac) * omega)[:, None] * ua + np.sin(frac * omega)[:, None] * ub) / np.sin(omega)
    # lateral wander (airways, weather): up to 1% of the leg, slow, zero at both airports
    amp = 0.01 * dist / 60.0
    wander = [amp * np.sin(np.pi * frac) * np.sin(2 * np.pi * rng.integers(1, 3) * frac + rng.uniform(0, 2 * np.pi))
              for _ in range(2)]
    lat[bounds[1]: bounds[4]] = np.degrees(np.arcsin(np.clip(p[:, 2], -1, 1))) + wander[0]
    lon[bounds[1]: bounds[4]] = np.degrees(np.arctan2(p[:, 1], p[:, 0])) + wander[1]
    envelope = np.sin(np.pi * (step[airborne] - bounds[1]) / (bounds[4] - bounds[1]))  # calm at both airports
    altitude[airborne] += 40.0 * envelope * _smooth_noise(rng, int(airborne.sum()), 30)
    return {"dt": dt, "phase": phase, "lat": lat, "lon": np.mod(lon + 180.0, 360.0) - 180.0, "altitude": altitude, "speed": speed}


def generate_aircraft(rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """Telemetry of one aircraft flying legs between reference airports back to back until ``rows`` samples.

    Samples come about once a second; a few are missing (gaps of 2-5 s) as with real recorders.
    """
    legs, total = [], 0
    here = int(rng.integers(len(airports.CODES)))
    while total < rows:
        far = [b for b in range(len(airports.CODES)) if LEG_RANGE_NM[0] <= _gc_nm(here, b) <= LEG_RANGE_NM[1]]
        there = int(rng.choice(far))
        legs.append(_leg(rng, here, there))
        total += len(legs[-1]["dt"])
        here = there
    cols = {k: np.concatenate([leg[k] for leg in legs])[:rows] for k in legs[0]}
    cols["dt"][0] = 0
    dlat = np.diff(cols["lat"], prepend=cols["lat"][0])
    dlon = np.diff(cols["lon"], prepend=cols["lon"][0])
    dlon = np.mod(dlon + 180.0, 360.0) - 180.0
    heading = np.mod(np.degrees(np.arctan2(dlon * np.cos(cols["lat"] * RAD), dlat)), 360.0)
    start = EPOCH + np.timedelta64(int(rng.integers(0, 86_400)), "s")
    return pd.DataFrame({
        "timestamp": start + np.cumsum(cols["dt"]).astype("timedelta64[s]"),
        "lat": cols["lat"].round(6), "lon": cols["lon"].round(6),
        "altitude_ft": cols["altitude"].round(1), "speed_kt": cols["speed"].round(2), "heading": heading.round(2),
        "phase": np.asarray(PHASES, dtype=object)[cols["phase"]],
    })


def _atomic_write(path: Path, write: Callable[[str], Any]) -> None:
    """Write through the engine's atomic writer: readers never see half a file, a killed write leaves nothing."""
    with atomic_path(path) as tmp:
        write(str(tmp))


def file_name(aircraft: int, file_format: str) -> str:
    return f"aircraft-{aircraft:03d}.{file_format}"


class FlightTelemetryManager(BaseManager):
    """Generates the telemetry files once (idempotently) and plans one partition per file."""

    def recipe(self) -> dict[str, Any]:
        """What the files depend on; the manifest records it and a difference means regenerate."""
        a = self.args
        return {"generator": GENERATOR_VERSION, "n_aircraft": a.n_aircraft, "rows_per_file": a.rows_per_file,
                "seed": a.seed, "file_format": a.file_format}

    def files(self) -> list[str]:
        return [file_name(i, self.args.file_format) for i in range(self.args.n_aircraft)]

    def _sizes(self) -> dict[str, int] | None:
        try:
            return {f: (self.data_in / f).stat().st_size for f in self.files()}
        except OSError:
            return None

    def is_prepared(self) -> bool:
        """True when the manifest records these args and every file it lists is there, at its size."""
        try:
            recorded = json.loads((self.data_in / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        return recorded.get("args") == self.recipe() and recorded.get("files") == self._sizes()

    def prepare(self) -> None:
        """Generate the files unless the manifest says these args already made them.

        Files of other args (and temp files of an interrupted run) are removed first so partitions
        never mix two datasets.
        """
        if self.is_prepared():
            return
        self.data_in.mkdir(parents=True, exist_ok=True)
        (self.data_in / MANIFEST).unlink(missing_ok=True)  # from here on a crash leaves "not prepared"
        for pattern in ("aircraft-*.*", ".aircraft-*.tmp", f".{MANIFEST}.*.tmp"):
            for old in self.data_in.glob(pattern):
                old.unlink(missing_ok=True)
        a = self.args
        for i, name in enumerate(self.files()):
            df = generate_aircraft(a.rows_per_file, np.random.default_rng(a.seed + i))
            if a.file_format == "csv":
                _atomic_write(self.data_in / name, lambda tmp: df.to_csv(tmp, index=False))
            else:
                _atomic_write(self.data_in / name, lambda tmp: df.to_parquet(tmp, index=False))
        text = json.dumps({"args": self.recipe(), "files": self._sizes()}, indent=2)
        _atomic_write(self.data_in / MANIFEST, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def partitions(self) -> list[Partition]:
        """One partition per aircraft file, weighted by its size (generating the files if needed)."""
        self.prepare()
        return [
            Partition(
                label=f"aircraft-{i:03d}",
                weight=float((self.data_in / name).stat().st_size),
                payload={"file": name, "aircraft": i},
            )
            for i, name in enumerate(self.files())
        ]
