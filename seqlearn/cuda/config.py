"""Launch sizes of the cuda backend (read by the Python launchers at launch time, never frozen
into a kernel). The tests shrink them so that tiny problems still use several blocks."""

TILE = 16            # tiled matrix product: TILE x TILE threads per block
MM_TILE = 64         # register-tiled product: MM_TILE x MM_TILE outputs per block,
MM_TT = 4            #   MM_TT x MM_TT per thread ((MM_TILE / MM_TT)^2 threads),
MM_BK = 16           #   MM_BK columns of k per staged tile
MM_MIN = 64          # use it when both output sides are at least this (else the TILE kernel)
MM_BIG_TILE = 128    # larger register tiles (8 x 8 per thread, 4 FMAs per shared load) when they
MM_BIG_TT = 8        #   still give at least MM_BIG_MIN_BLOCKS blocks (H = 1024 weight gradients)
MM_BIG_BK = 8
MM_BIG_MIN_BLOCKS = 128
THREADS = 256        # elementwise / gather / scatter / optimizer kernels: threads per block
MAX_BLOCKS = 4096    # grid-stride kernels never launch more blocks than this
XENT_THREADS = 128   # softmax cross-entropy: threads per row (a power of two)
REDUCE_THREADS = 256 # sum / sum of squares: threads per block (a power of two)
SAMPLE_THREADS = 128 # sampler: threads per sequence (a power of two)
COLSUM_ROWS = 16     # column sums / one-hot scatter: 32 columns x COLSUM_ROWS row slices per block

# Persistent (grid-synchronised) recurrent kernels: "auto" uses them where they fit,
# "never" always takes the per-step path, "always" raises when they do not fit.
PERSISTENT = "auto"
# The persistent kernels are written for one cooperative grid; the simulator can only run a
# cooperative grid of one block, so tests set this to 1 there.
PERSIST_MAX_BLOCKS = None   # None: ask the device
PERSIST_J = (1, 2, 4, 8)    # hidden units per block the fit may choose from
PERSIST_MAX_THREADS = 1024  # threads per block of the persistent kernels
PERSIST_MAX_CHUNK = None    # widest staged chunk of h (forward) / da (backward); None: as wide as fits
PERSIST_PIPELINE = True     # chunks of <= 256 columns whose next chunk is loaded during the FMAs
