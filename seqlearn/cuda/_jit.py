"""How the cuda backend builds its kernels: specialisations (element type, compile-time sizes)
built once per key, the numba scalar type of a dtype, and whether the CUDA simulator runs them."""
from numba import config as _nbconfig
from numba import float32, float64

SIMULATOR = bool(_nbconfig.ENABLE_CUDASIM)
WARP = 32     # threads per warp; also the columns per block of the column-sum and scatter kernels
_CACHE = {}


def get(builder, *key):
    """The kernel `builder(*key)`, built once per key."""
    k = (builder.__name__,) + key
    kern = _CACHE.get(k)
    if kern is None:
        kern = _CACHE[k] = builder(*key)
    return kern


def nbtype(dtype):
    """numpy dtype -> numba scalar type."""
    return {"float32": float32, "float64": float64}[str(dtype)]
