"""Sleep input kinds: how the intensity ``x`` of input pixel ``i`` is computed each step.

Each kind is Brian2 equations added to the input group of ``models/src.py`` (whose
threshold turns ``x`` into Poisson-like spikes), plus the names of the per-run data they
read. The engine's input classes (``brainsleep/sleep/inputs.py``) supply that data; they
hold no equation. Names an equation may read besides its own variables: ``t``, ``i``,
the TimedArrays listed under ``timed`` (values per step, set per run), the clock's ``dt``
and the integer constants listed under ``constants`` (fixed per compiled structure).
"""

# A pool of images and one pool row per window of ``every`` steps (``samples`` and
# ``class-means``). Both are TimedArrays, set per run: ``pool_index`` steps once per window
# and holds a row number of the pool; ``pool_images`` has one row per image and dt equal to
# the clock's, so its row k is read by calling it at time k * dt. (Brian2's TimedArray
# rounds its time argument to the nearest row, so k * dt gives row k exactly, and every
# target, numpy, C++ and CUDA, implements a 2-D TimedArray called at any time.) A (T, n_in)
# array never exists: the pool holds M images and the index one number per window.
_POOL = {
    "equations": "x = pool_images(pool_index(t) * dt, i) : 1",
    "timed": ("pool_images", "pool_index"),
    "constants": (),
}

INPUT_KINDS = {
    # An explicit (T, n_in) intensity array: x of pixel i at step t.
    "array": {
        "equations": "x = x_in(t, i) : 1",
        "timed": ("x_in",),
        "constants": (),
    },
    # The reference's input (create_masked_input.m): a patch x patch window of the mean
    # training image at a random position each step, zero elsewhere. Per run: the mean
    # image (mean_px) and two offsets per step (win_row, win_col); per structure: each
    # pixel's row and column and the window side.
    "masked-mean": {
        "equations": """
            mean_px : 1 (constant)
            px_row : integer (constant)
            px_col : integer (constant)
            in_rows = int(px_row >= win_row(t)) * int(px_row < win_row(t) + patch) : 1
            in_cols = int(px_col >= win_col(t)) * int(px_col < win_col(t) + patch) : 1
            x = mean_px * in_rows * in_cols : 1
        """,
        "timed": ("win_row", "win_col"),
        "constants": ("patch",),
    },
    # The whole mean training image at every step. Per run: the mean image (mean_px).
    "mean": {
        "equations": """
            mean_px : 1 (constant)
            x = mean_px : 1
        """,
        "timed": (),
        "constants": (),
    },
    # A random training image per window of ``every`` steps, drawn from a pool of M
    # training images (the whole training set if small enough).
    "samples": _POOL,
    # The mean image of a random class per window: the pool holds the class means.
    "class-means": _POOL,
    # Uniform intensity, no image: every pixel has intensity noise_level at every step.
    # Per run: that one number (a shared variable, so one build serves every level).
    "noise": {
        "equations": """
            noise_level : 1 (shared, constant)
            x = noise_level : 1
        """,
        "timed": (),
        "constants": (),
    },
    # SNN evaluation: image k of a batch shown for the k-th presentation window. The
    # TimedArray holds one row per image and steps once per window.
    "images": {
        "equations": "x = images(t, i) : 1",
        "timed": ("images",),
        "constants": (),
    },
}
