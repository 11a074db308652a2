"""The facts of the datasets and protocols, written once: metric names, camera focal lengths, crop boxes, limits.

Every module that needs one of these imports it from here, so that metrics, evaluation, training, data readers,
model cards and the command line cannot disagree.
"""

# ---- metrics ---------------------------------------------------------------------------------------------------------

METRIC_NAMES: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog",
    "delta1",
    "delta2",
    "delta3",
)
"""The nine per-image metrics of the community protocols, in their usual table order. Their `silog` is the KITTI
benchmark's: 100 * sqrt(mean(e^2) - mean(e)^2), e = ln(pred) - ln(gt)."""
AUTHORS_METRIC_NAMES: tuple[str, ...] = (
    "abs_rel",
    "sq_rel",
    "rmse",
    "rmse_log",
    "log10",
    "silog_authors",
    "delta1",
    "delta2",
    "delta3",
)
"""The nine per-image metrics of the authors' protocol (their `util/metric.py`): the same definitions but for the
scale-invariant error, `silog_authors` = sqrt(mean(e^2) - 0.5 * mean(e)^2), without x100."""
SILOG_DEFINITIONS: dict[str, str] = {
    "silog": "100 * sqrt(mean(e^2) - mean(e)^2), e = ln(pred) - ln(gt) (KITTI benchmark)",
    "silog_authors": "sqrt(mean(e^2) - 0.5 * mean(e)^2), e = ln(pred) - ln(gt), no x100 (the authors' util/metric.py)",
}
LOWER_IS_BETTER: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog", "silog_authors")
HIGHER_IS_BETTER: tuple[str, ...] = ("delta1", "delta2", "delta3")
METRIC_DISPLAY_NAMES: dict[str, str] = {
    "abs_rel": "AbsRel",
    "sq_rel": "SqRel",
    "rmse": "RMSE",
    "rmse_log": "RMSE log",
    "log10": "log10",
    "silog": "SILog",
    "silog_authors": "SILog (authors: lambda 0.5, no x100)",
    "delta1": "delta1 (< 1.25)",
    "delta2": "delta2 (< 1.25^2)",
    "delta3": "delta3 (< 1.25^3)",
}
"""How the model card's tables and `model-index` name each metric."""

PROTOCOLS: tuple[str, ...] = ("community", "authors")
"""How a model is scored: "community" (BTS/ZoeDepth crops, `METRIC_NAMES`) or "authors" (the WEDepth code's
datasets, validation loop and metrics, `AUTHORS_METRIC_NAMES`)."""
PROTOCOL_METRIC_NAMES: dict[str, tuple[str, ...]] = {"community": METRIC_NAMES, "authors": AUTHORS_METRIC_NAMES}

# ---- cameras ---------------------------------------------------------------------------------------------------------

NYU_SIZE: tuple[int, int] = (480, 640)
NYU_FX, NYU_FY, NYU_CX, NYU_CY = 518.8579, 519.4696, 325.58, 253.74
"""NYU-Depth v2 (Kinect) colour intrinsics at 640x480, in pixels."""
NYU_FOCAL = NYU_FX
KITTI_FOCAL = 721.5377
HYPERSIM_FOCAL = 886.81
"""HyperSim and DIODE images are 768x1024 with a focal length of 886.81 px."""
DIODE_FOCAL = HYPERSIM_FOCAL
VKITTI2_FOCAL = 725.0087

# ---- crops -----------------------------------------------------------------------------------------------------------

KB_CROP_SIZE: tuple[int, int] = (352, 1216)
"""KITTI's KB crop: the bottom 352 rows, the centred 1216 columns."""
EIGEN_NYU_CROP: tuple[int, int, int, int] = (45, 471, 41, 601)
"""Rows 45:471 and columns 41:601 of a 480x640 NYU image (scaled for other sizes)."""
GARG_CROP_ROWS: tuple[float, float] = (0.40810811, 0.99189189)
EIGEN_KITTI_CROP_ROWS: tuple[float, float] = (0.3324324, 0.91351351)
KITTI_CROP_COLUMNS: tuple[float, float] = (0.03594771, 0.96405229)
"""The Garg and Eigen KITTI crops, as fractions of the height (rows) and width (columns, shared)."""

# ---- the authors' evaluation (their dataset/*.py) -----------------------------------------------------------------

AUTHORS_MIN_VALID_PIXELS = 10
"""Their validation loop skips an image with fewer valid pixels than this."""
AUTHORS_NYU_CROP_SIZE: tuple[int, int] = (480, 640)
"""NYU, iBims-1 and SUN RGB-D are evaluated on (cropped or resized to) 480x640, with the Eigen box in absolute rows and
columns (`EIGEN_NYU_CROP`)."""
AUTHORS_DRIVING_CROP: tuple[int, int, int, int] = (180, 1050, 870, 1920)
"""DDAD and Argoverse: rows 180:1050 of the frame (870 rows) and 1920 columns from a dataset-specific left edge."""
AUTHORS_DRIVING_RESCALE = 1.5
"""DDAD and Argoverse images are shrunk by this factor (OpenCV INTER_LINEAR) before the model; the ground truth
keeps the crop's full size."""
DDAD_MASKED_BOTTOM_ROWS = 140
"""DDAD's CAMERA_09 sees the car's body: its bottom 140 rows of the crop are not scored."""

# ---- storage ---------------------------------------------------------------------------------------------------------

MAX_UINT16_DEPTH_METRES = 65.535
"""The largest depth a uint16 millimetre PNG holds."""
