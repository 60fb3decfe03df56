"""The cuda backend's tunables and the device limits its launchers plan with. Read by the Python
launchers at launch time, never frozen into a kernel; the tests shrink them so that tiny problems
still use several blocks. The measurements behind the defaults are in docs/gpu.md."""

# ---- products (ops.matmul; kernels in _gemm.py) -------------------------------------------------
TILE = 16            # tiled matrix product: TILE x TILE threads per block
MM_TILE = 64         # register-tiled product: MM_TILE x MM_TILE outputs per block,
MM_TT = 4            #   MM_TT x MM_TT per thread ((MM_TILE / MM_TT)^2 threads),
MM_BK = 16           #   MM_BK columns of k per staged tile
MM_MIN = 64          # use it when both output sides are at least this (else the TILE kernel)
MM_BIG_TILE = 128    # larger register tiles (8 x 8 per thread, 4 FMAs per shared load) when they
MM_BIG_TT = 8        #   still give at least MM_BIG_MIN_BLOCKS blocks (H = 1024 weight gradients)
MM_BIG_BK = 8
MM_BIG_MIN_BLOCKS = 128

# Weight-gradient products C (+)= A.T @ B (A (T*B, 4H), B (T*B, H); also the head's dW) on
# _gemm.build_matmul_wg, bias sums fused; off: the register-tiled product and a column-sum launch
# (see docs/gpu.md, 'Measured (third device run ...)').
MM_WG = True
MM_WG_TILES = ((128, 8, 8), (64, 4, 16))  # (tile, per-thread tile, k per tile): the first when both
                                          # output sides are >= its tile, else the second
MM_WG_MINBLOCKS = 0   # > 0: launch bounds (threads, MINBLOCKS): ptxas caps the registers so that
                      # this many blocks fit an SM (2 at 256 threads: <= 128 registers)
MM_SPLITK = 0         # split the K = T*B reduction over this many blocks along z; 0: enough for
                      # MM_SPLITK_WAVES blocks per SM (at least MM_SPLITK_MIN_K rows each)
MM_SPLITK_WAVES = 2
MM_SPLITK_MIN_K = 256
MM_SPLITK_MAX = 16
MM_SPLITK_ATOMIC = False  # combine the K slices with atomic adds into C (order not fixed) instead
                          # of partial tiles and a second, fixed-order pass
MM_SMS = None             # SMs for the split choice; None: ask the device

# ---- elementwise, reductions, head, sampler ---------------------------------------------------
THREADS = 256        # elementwise / gather / scatter / optimizer kernels: threads per block
MAX_BLOCKS = 4096    # grid-stride kernels never launch more blocks than this
XENT_THREADS = 128   # softmax cross-entropy: threads per row (a power of two)
REDUCE_THREADS = 256 # sum / sum of squares: threads per block (a power of two)
REDUCE_MAX_BLOCKS = 1024   # sum / sum of squares: partial sums of the first pass (one block adds them)
SAMPLE_THREADS = 128 # sampler: threads per sequence (a power of two)
COLSUM_ROWS = 16     # column sums / one-hot scatter: 32 columns x COLSUM_ROWS row slices per block

# ---- device limits ----------------------------------------------------------------------------
SMEM_DEFAULT = 48 * 1024   # dynamic shared memory per block without the opt-in attribute
MAX_BLOCK_THREADS = 1024   # threads per block (also the simulator's shuffle-exchange buffer)
SMS_FALLBACK = 132         # SMs for the split-K choice where the device cannot say (the simulator)

# ---- scratch buffers kept per shape: a cache is emptied when it holds this many shapes ---------
SCRATCH_SHAPES = 16        # split-K partial tiles (ops)
HEAD_SCRATCH_SHAPES = 8    # logits, row losses and the loss (head)

# ---- persistent (grid-synchronised) recurrent kernels (persist.py) -----------------------------
# "auto" uses them where they fit, "never" always takes the per-step path, "always" raises when
# they do not fit.
PERSISTENT = "auto"
# The persistent kernels are written for one cooperative grid; the simulator can only run a
# cooperative grid of one block, so tests set this to 1 there.
PERSIST_MAX_BLOCKS = None   # None: ask the device
PERSIST_J = (1, 2, 4, 8)    # hidden units per block the fit may choose from
PERSIST_MAX_THREADS = MAX_BLOCK_THREADS  # threads per block of the persistent kernels
PERSIST_MAX_CHUNK = None    # widest staged chunk of h (forward) / da (backward); None: as wide as fits
PERSIST_PIPELINE = False    # True: chunks of <= 256 columns whose next chunk is loaded during the
                            # FMAs; off, the widest chunk that fits (faster: docs/gpu.md, "Persistent kernels")
