"""Files of fields in physical units (HDF5 datasets, netCDF variables), written with
h5py and xarray, which the weather extra installs: a test imports them (or skips)
before calling these."""

from __future__ import annotations

import numpy as np


def write_h5(path, name: str, array: np.ndarray, **attrs):
    """`array` as dataset `name` of a new HDF5 file, chunked, with `attrs`."""
    import h5py

    with h5py.File(path, "w") as file:
        stored = file.create_dataset(name, data=array, chunks=True)
        stored.attrs.update(attrs)
    return path


def write_nc(path, array: np.ndarray, first_hour: int = 0, dims=("time", "y", "x"),
             variable: str = "rain", fill: float | None = None, with_time: bool = True):
    """`array` as `variable` of a new netCDF-4 file, hourly from `first_hour` of
    2024-05-01 along `dims[0]` (unless `with_time=False`), `fill` as its _FillValue."""
    import xarray

    coords = {}
    if with_time:
        coords[dims[0]] = np.datetime64("2024-05-01T00") + np.arange(
            first_hour, first_hour + len(array)).astype("timedelta64[h]")
    dataset = xarray.Dataset({variable: (dims, array)}, coords=coords)
    encoding = {variable: {"_FillValue": fill}} if fill is not None else {}
    dataset.to_netcdf(path, engine="h5netcdf", encoding=encoding)
    return path
