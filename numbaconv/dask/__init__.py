"""Scale-out on Dask: numbaconv's ops and trained models over arrays larger than one
machine, equal to the single-array result (float rounding aside), whatever the chunking.

* ops (:mod:`.ops`): ``conv1d``, ``conv2d``, ``conv_transpose1d/2d``, ``max_pool1d/2d``,
  ``avg_pool1d/2d``, ``interpolate`` with numbaconv's functional signatures, ``x`` a
  ``dask.array.Array`` chunked along N and the spatial axes; each returns a lazy array.
* :func:`predict` (:mod:`.model`): a ``numbaconv.nn`` model, tile by tile with one halo
  from its receptive field, or per chunk of images where it ends in a classifier.
* :func:`configure` (:mod:`.workers`): numba threads, threading layer and JIT cache of a
  ``distributed`` cluster's workers.

How each block is made exact: ``_plan``.  Needs the ``dask`` extra
(``pip install 'numbaconv[dask]'``: dask[array], distributed, zarr).
"""

try:
    import dask.array  # noqa: F401
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError("numbaconv.dask needs dask: pip install 'numbaconv[dask]'") from exc

from .model import predict
from .ops import (
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    conv_transpose1d,
    conv_transpose2d,
    interpolate,
    max_pool1d,
    max_pool2d,
)
from .workers import configure

__all__ = [
    "avg_pool1d",
    "avg_pool2d",
    "configure",
    "conv1d",
    "conv2d",
    "conv_transpose1d",
    "conv_transpose2d",
    "interpolate",
    "max_pool1d",
    "max_pool2d",
    "predict",
]
