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


def write_odim(path, when: str, datasets: dict, shape_override=None):
    """An ODIM_H5 composite file (OPERA's layout, version 2.x) at `path`, of time
    `when` ("YYYYmmddHHMMSS"): root `what` (date, time, object), `where` (projection and
    corners, which pysteps' importer reads), and per quantity `datasetN/data1/what`
    (quantity, gain, offset, nodata, undetect) and `datasetN/data1/data`, the packed
    array. `datasets`: {quantity: (packed uint8 [H, W], gain, offset, nodata, undetect)}.
    """
    import h5py

    with h5py.File(path, "w") as file:
        file.attrs["Conventions"] = np.bytes_("ODIM_H5/V2_3")
        what = file.create_group("what")
        what.attrs.update({"object": np.bytes_("COMP"), "version": np.bytes_("H5rad 2.3"),
                           "date": np.bytes_(when[:8]), "time": np.bytes_(when[8:14]),
                           "source": np.bytes_("ORG:247")})
        where = file.create_group("where")
        where.attrs.update({"projdef": np.bytes_("+proj=longlat +datum=WGS84"),
                            "LL_lat": 40.0, "LL_lon": 0.0, "UR_lat": 50.0, "UR_lon": 10.0,
                            "xscale": 2000.0, "yscale": 2000.0})
        for number, (quantity, (packed, gain, offset, nodata, undetect)) in enumerate(
                datasets.items(), start=1):
            data = file.create_group(f"dataset{number}/data1")
            data.create_dataset("data", data=packed, compression="gzip")
            data.create_group("what").attrs.update({
                "quantity": np.bytes_(quantity), "gain": float(gain), "offset": float(offset),
                "nodata": float(nodata), "undetect": float(undetect)})
            file[f"dataset{number}"].create_group("what").attrs.update(
                {"product": np.bytes_("COMP")})
    return path
