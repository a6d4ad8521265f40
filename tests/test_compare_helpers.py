"""Pure helpers behind the Compare views: Pareto front, convention headers, zoom and size matching, CSV and JSON exports."""
import io
import json

import numpy as np
import pandas as pd

from core.services.compare import pareto_front, short_convention
from core.tasks.restoration import same_size, zoom
from ui.url_state import to_csv, to_json


def test_pareto_front_keeps_only_undominated_points():
    cost = np.array([1.0, 2.0, 3.0, 2.0, 5.0, np.nan])
    quality = np.array([20.0, 25.0, 24.0, 25.0, 30.0, 40.0])
    # (3, 24) is beaten by (2, 25); the two equal points (2, 25) both stay; a point without cost never does
    assert pareto_front(cost, quality).tolist() == [True, True, False, True, True, False]
    # lower-is-better quality (e.g. FID): the smallest value at each cost wins
    assert pareto_front(np.array([1.0, 2.0]), np.array([10.0, 5.0]), y_higher_is_better=False).tolist() == [True, True]
    assert pareto_front(np.array([1.0, 2.0]), np.array([5.0, 10.0]), y_higher_is_better=False).tolist() == [True, False]


def test_short_convention_reads_like_a_paper_header():
    assert short_convention("y,range=255,crop=4, mean of per-image") == ("Y channel (BasicSR), values 0-255, 4 px border cropped, "
                                                                            "mean of per-image values")
    assert short_convention("rgb,range=255,crop=0") == "RGB, values 0-255, no border crop"
    assert short_convention("IoU>=0.5, score>=0.5, micro") == "IoU ≥ 0.5, score ≥ 0.5, micro"


def test_zoom_crops_around_the_centre_and_enlarges_by_nearest():
    img = np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3)
    z = zoom(img, 0.0, 1.0, 4)  # bottom-left corner
    assert z.shape == (64, 64, 3)
    assert (z[:4, :4] == img[48, 0]).all() and (z[-1, -1] == img[63, 15]).all()
    assert zoom(img, 0.5, 0.5, 1) is img


def test_same_size_enlarges_a_low_resolution_input():
    lr = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    big = same_size(lr, np.zeros((4, 6, 3), np.uint8))
    assert big.shape == (4, 6, 3) and (big[1, 1] == lr[0, 0]).all() and (big[3, 5] == lr[1, 2]).all()
    odd = same_size(lr, np.zeros((5, 7, 3), np.uint8))  # a border left by the crop is padded with the edge
    assert odd.shape == (5, 7, 3) and (odd[4, 6] == lr[1, 2]).all()


def test_json_export_keeps_infinity_and_dates_readable():
    df = pd.DataFrame({"model": ["a", "b"], "psnr": [float("inf"), 31.5], "ssim": [np.nan, 0.9],
                       "at": pd.to_datetime(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])})
    rows = json.loads(to_json(df))
    assert rows[0] == {"model": "a", "psnr": "inf", "ssim": None, "at": "2026-01-01T00:00:00+00:00"}
    assert rows[1]["psnr"] == 31.5


def test_csv_export_keeps_a_formula_someone_typed_as_text_and_numbers_as_numbers():
    """A classmate names a dataset or a class `=HYPERLINK(...)`; the teacher opens the export in a spreadsheet."""
    hostile = '=HYPERLINK("http://evil.example","open me")'
    df = pd.DataFrame({"dataset": [hostile, " +1+2", "\t@SUM(A1)", "-", "σ noise"],
                       "Δ PSNR (dB)": [-0.5, 1.25, np.nan, 2.0, -3.0],
                       "=1+1": pd.Categorical(["-2", "a", "a", "b", "b"]),
                       "at": pd.to_datetime(["2026-01-01T00:00:00Z"] * 5)})
    data = to_csv(df)
    assert data.startswith(b"\xef\xbb\xbf")  # UTF-8 byte-order mark: Excel then reads the σ as one letter
    back = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    assert list(back.columns) == ["dataset", "Δ PSNR (dB)", "'=1+1", "at"]
    assert list(back["dataset"]) == ["'" + hostile, "' +1+2", "'\t@SUM(A1)", "'-", "σ noise"]
    assert list(back["'=1+1"]) == ["'-2", "a", "a", "b", "b"]
    assert back["Δ PSNR (dB)"].tolist()[:2] == [-0.5, 1.25] and back["Δ PSNR (dB)"].iloc[4] == -3.0
    assert back["at"].iloc[0] == "2026-01-01 00:00:00+00:00"
    assert list(df["dataset"])[0] == hostile  # the table shown (and its JSON download) is left as it was
