"""Plumbing shared by the chapters; each module has one concern.

    download   data folder, checksum-verified atomic downloads, cache
    housing    the Boston housing data set (chapter 1)
    files      atomic file and folder writes, strict JSON (no NaN), metrics.json, --out checks, run-folder locks
    runtime    seeding, device choice, the one way to say training diverged
    cli        the command line every chapter shares; run(main): one line per error, --debug for the traceback
    plot       curves to PNG (no display needed)
    checkpoint checksummed state files; checkpoints that resume a run exactly (the previous one kept);
               exported inference models swapped in whole and verified before loading
    progress   tqdm progress bars that stay out of logs when output is not a terminal
    image      reading photos with OpenCV, clear errors for missing, non-image or oversized files
    mnist      the MNIST data set: IDX files or the offline 5k subset (chapters 2 and 4)
    image_folder  your own images: a folder of class subfolders, for classification (chapter 2 --data FOLDER)
    table      your own table: a CSV with a header, for regression (chapter 1 --data FILE.csv --target COLUMN)
    models     the image classifiers (softmax, MLP, LeNet) with their sizes as arguments (chapters 2 and 4)
    inspector  per-layer shapes, parameters, MACs and FLOPs of any model (chapter 5)

The instructor's tools live apart, in common/grading/ (grade, assign, new_chapter and the grader's pytest plugin):
they may import from here, but no chapter imports them.

A chapter shows its lesson (the model, the loop); what is the same everywhere lives here.
Importing `common` also applies two process-wide settings, which must come before Paddle starts work.
"""
import os as _os
import warnings as _warnings

# Paddle warns at import that ccache (a C++ compiler cache for custom operators) is missing; we compile nothing.
_warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)


def _prefer_fast_mkl_path_on_amd() -> None:
    # The MKL bundled with Paddle takes a slow generic code path on AMD CPUs unless told otherwise
    # (measured about 1.25x on matmul-heavy training). Harmless on Intel, where it is not set.
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as f:
            is_amd = "AuthenticAMD" in f.read(4096)
    except OSError:
        return
    if is_amd:
        _os.environ.setdefault("MKL_DEBUG_CPU_TYPE", "5")


_prefer_fast_mkl_path_on_amd()
