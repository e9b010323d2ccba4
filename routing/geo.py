"""Great-circle geometry on a spherical Earth, and the lower bounds the spatial index prunes by.

Distances are haversine distances on a sphere of the IUGG mean Earth radius: within Chongqing
(about 450 km across) the spherical model errs by well under 0.5 %, far below what routing
cares about, and it keeps the bounds below exact.
"""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0088
KM_PER_DEGREE_LATITUDE = EARTH_RADIUS_KM * math.pi / 180.0


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle distance between two points given in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    a = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def min_km_for_latitude_gap(degrees: float) -> float:
    """No two points whose latitudes differ by ``degrees`` are closer than this.

    Latitude changes by at most one radian per Earth radius travelled along any path, so the
    meridian arc is a lower bound of the great-circle distance.
    """
    return max(0.0, degrees) * KM_PER_DEGREE_LATITUDE


def min_km_for_longitude_gap(degrees: float, max_abs_latitude: float) -> float:
    """No two points at most ``max_abs_latitude`` from the equator whose longitudes differ by
    ``degrees`` (at most 180) are closer than this.

    From the haversine formula:
    sin²(d/2R) >= cos φ1 · cos φ2 · sin²(Δλ/2) >= cos² φmax · sin²(Δλ/2).
    """
    if degrees <= 0.0:
        return 0.0
    half_gap = math.radians(min(degrees, 180.0)) / 2
    scale = math.cos(math.radians(min(90.0, abs(max_abs_latitude))))
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, scale * math.sin(half_gap)))
