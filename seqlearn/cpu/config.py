"""The cpu backend's tunables, in one place (as cuda/config.py is the cuda backend's).

Each value won a measurement on the 2-core machine; the section of docs/performance.md named
beside it holds the numbers. Host-side values are read at call time (tests set them); the
compile-time ones (PREFETCH, PREFETCH_SMALL, NT2_COLS) are frozen into the kernels they build.
"""

# ---- threads ("How the cpu backend spends the cores") -------------------------------------------
MIN_ROWS = 8        # fewest batch rows per chunk (products on fewer rows waste the BLAS kernel)
MIN_WROWS = 32      # fewest output rows per chunk of a weight-gradient product
# How a recurrent time loop is shared out: "batch" (rows of the batch, no synchronisation),
# "units" (every thread takes the whole batch and its own slice of every gate, so each streams
# only its part of W_hh; one spin barrier per time step), or "auto": units when W_hh takes at
# least UNITS_MIN_BYTES[direction] (where it no longer fits the caches), else batch.
SPLIT = "auto"
UNITS_MIN_BYTES = {"forward": 8 << 20, "backward": 8 << 20}
UNIT_ALIGN = 16     # unit slices start at multiples of this (vector loads stay aligned)
# A worker that has finished its job spins this many loads (about 1 ms) before it sleeps: the
# kernels of a training step follow each other within microseconds.
SPIN = 3 << 20

# ---- per-step products ("Packed products") -------------------------------------------------------
PREFETCH = 16           # k steps ahead a tile of 5-6 rows prefetches its next panel (W_hh beyond L3)
PREFETCH_SMALL = 64     # ... and a tile of 1-4 rows (generation), whose k step takes a few cycles
PACK_THREADS_MIN = 512 << 10    # bytes of W from which packing is shared out over the threads
NT2_COLS = 64           # columns of C per block of gates_nt2 (the block stays in L1 between its products)

# ---- weight-gradient products ("Weight-gradient products") ---------------------------------------
SPLIT_K_MAX = 1 << 21   # split over the N rows (partial dW summed) while dW has at most this many elements
TN_MAX_BYTES = 2048     # rows of D up to this size: _tn reads D.T in place; wider: _tn_wide
KC = 768                # _tn_wide: rows of D and X per block
MC = 48                 # _tn_wide: columns of D per transposed block

# ---- generation ("Generation") -------------------------------------------------------------------
SPLIT_MIN_BYTES = 1 << 20   # recurrent weights from which one sequence's step is split over threads
