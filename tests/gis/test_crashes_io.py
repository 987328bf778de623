"""NPA crash CSV reader: footer rows, swapped coordinates, rows without coordinates, encodings."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from gis.errors import DataError
from gis.io.crashes import crashes_from_frame, read_crashes

HEADER = "發生時間,發生地點,死亡受傷人數,車種,經度,緯度"
ROWS = [
    "107年01月01日 05時12分00秒,彰化縣大村鄉,死亡1;受傷0,自用-小客車,120.578892,23.962235",
    "107年03月02日 14時55分00秒,桃園市蘆竹區,死亡0;受傷2,普通輕型-機車,121.244920,25.036777",
    "107年05月03日 17時10分13秒,苗栗縣竹南鎮,死亡1;受傷3,自用-小客車,24.682004,120.861178",
    "107年06月04日 17時30分20秒,南投縣集集鎮,死亡1;受傷0,普通重型-機車,,",
    "107年07月05日 08時00分00秒,某地,死亡0;受傷0,自用-小客車,139.7,35.6",
]
FOOTER = ["資料提供日期：108年10月30日,,,,,", "事故類別：A1類,,,,,"]


def _write(tmp_path, encoding: str, bom: bool = False, newline: str = "\n"):
    text = newline.join([HEADER, *ROWS, *FOOTER]) + newline
    data = text.encode(encoding)
    if bom:
        data = b"\xef\xbb\xbf" + data
    path = tmp_path / f"a1_{encoding}.csv"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("encoding,bom,newline", [("utf-8", True, "\n"), ("utf-8", False, "\r\n"),
                                                  ("big5", False, "\r\n")])
def test_npa_csv_counts_and_fixes(tmp_path, encoding, bom, newline):
    rec = read_crashes(_write(tmp_path, encoding, bom, newline))
    assert rec.rows == 5 and rec.footer == 2
    assert rec.skipped == {"no coordinates": 1, "outside Taiwan": 1}
    assert rec.swapped == [4]  # the third data row is line 4 of the file
    f = rec.frame
    assert len(f) == 3 and f.crs.to_epsg() == 4326
    # the swapped row comes back as lon 120.86, lat 24.68
    assert shapely.get_x(f.geometry.iloc[2]) == pytest.approx(120.861178)
    assert shapely.get_y(f.geometry.iloc[2]) == pytest.approx(24.682004)
    assert list(f["severity"]) == ["fatal", "injury", "fatal"]
    assert list(f["deaths"]) == [1, 0, 1] and list(f["injuries"]) == [0, 2, 3]
    assert f["time"].iloc[0] == pd.Timestamp(2018, 1, 1, 5, 12, 0)
    assert f["time"].iloc[2] == pd.Timestamp(2018, 5, 3, 17, 10, 13)
    assert rec.encoding == {"utf-8": "utf-8-sig" if bom else "utf-8", "big5": "big5"}[encoding]
    s = rec.summary()
    assert s["read"] == 3 and s["skipped_total"] == 2 and s["swapped_lon_lat"] == 1


def test_no_coordinate_columns(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match="longitude"):
        read_crashes(p)


def test_only_footer_is_an_error(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("\n".join([HEADER, *FOOTER]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="no crash records"):
        read_crashes(p)


def test_point_layer_with_time_and_severity():
    frame = gpd.GeoDataFrame(
        {"time": ["2021-03-01T08:00:00+08:00", "2021-03-02T00:30:00+00:00", "bad"],
         "severity": ["fatal", "injury", "nonsense"]},
        geometry=[shapely.Point(0, 0), shapely.Point(1, 1), shapely.Point(2, 2)], crs="EPSG:3826")
    rec = crashes_from_frame(frame, source="crashes")
    assert len(rec.frame) == 2 and rec.skipped == {"unknown severity": 1}
    # UTC 00:30 is 08:30 in Taiwan
    assert rec.frame["time"].iloc[1] == pd.Timestamp(2021, 3, 2, 8, 30)


@pytest.mark.shared_data
def test_real_npa_files(shared_data):
    """SOURCE.md: 1,457 / 1,814 / 1,806 rows with coordinates, 2 footer rows each, one swapped
    pair in 2018 (longitude 24.14)."""
    files = [shared_data("tw-a1-accidents", f) for f in
             ("A1_2018_roc107.csv", "A1_2019_roc108.csv", "A1_2020_roc109.csv")]
    counts = []
    for f in files:
        rec = read_crashes(f)
        assert rec.footer == 2 and rec.encoding == "utf-8-sig"
        counts.append(len(rec.frame))
        assert (rec.frame["severity"] == "fatal").all()  # A1: deaths within 24 h
    assert counts == [1457, 1814, 1806]
    rec = read_crashes(files)
    assert len(rec.swapped) == 1 and len(rec.frame) == 5077
    x, y = shapely.get_x(rec.frame.geometry.values), shapely.get_y(rec.frame.geometry.values)
    assert x.min() > 118 and x.max() < 122.1 and y.min() > 21.8 and y.max() < 26.5
    assert rec.frame["time"].dt.year.value_counts().sort_index().tolist() == counts
