"""Sleep input kinds: how the intensity ``x`` of input pixel ``i`` is computed each step.

Each kind is Brian2 equations added to the input group of ``models/src.py`` (whose
threshold turns ``x`` into Poisson-like spikes), plus the names of the per-run data they
read. The engine's input classes (``brainsleep/sleep/inputs.py``) supply that data; they
hold no equation. Names an equation may read besides its own variables: ``t``, ``i``,
the TimedArrays listed under ``timed`` (values per step, set per run) and the integer
constants listed under ``constants`` (fixed per compiled structure).
"""

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
    # SNN evaluation: image k of a batch shown for the k-th presentation window. The
    # TimedArray holds one row per image and steps once per window.
    "images": {
        "equations": "x = images(t, i) : 1",
        "timed": ("images",),
        "constants": (),
    },
}
