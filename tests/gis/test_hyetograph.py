"""Rain-gauge CSVs: stamp conventions, units, and clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gis.errors import DataError
from gis.io.hyetograph import read_hyetograph

MORAKOT = ("tw-morakot-rainfall-jiaxian", "C0V250_jiaxian_2009-08-05_2009-08-11_hourly_precip.csv")
DAILY = ("tw-morakot-rainfall-jiaxian", "C0V250_jiaxian_2009-07-29_2009-08-31_daily_precip.csv")


@pytest.mark.shared_data
def test_morakot_hourly_steps_end_at_their_stamps_and_sum_to_the_daily_file(shared_data):
    hyeto = read_hyetograph(shared_data(*MORAKOT))
    assert hyeto.total_mm == pytest.approx(2090.0)
    assert hyeto.start == pd.Timestamp("2009-08-04 23:00")  # the hour ending 00:00 on Aug 5
    daily = pd.read_csv(shared_data(*DAILY))
    daily = daily.set_index(pd.to_datetime(daily.iloc[:, 0])).iloc[:, -1]
    for day in pd.date_range("2009-08-06", "2009-08-10"):
        # CWA days run 00:00-24:00 local; hour-ending stamps 01:00..24:00 belong to the day.
        t0 = (day - hyeto.start).total_seconds()
        got = hyeto.cumulative_mm(t0 + 86400) - hyeto.cumulative_mm(t0)
        assert got == pytest.approx(daily[day], abs=0.05), day


def test_numeric_times_need_a_unit_and_start_stamps_are_honoured(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("t_min,rain_mm\n0,1\n10,2\n20,3\n")
    h = read_hyetograph(p, stamp="start")
    np.testing.assert_allclose(h.edges_s, [0, 600, 1200, 1800])
    assert h.rate_m_s(700) == pytest.approx(0.002 / 600)
    assert h.rate_m_s(5000) == 0.0
    p.write_text("t,rain_mm\n0,1\n10,2\n")
    with pytest.raises(DataError, match="unit"):
        read_hyetograph(p)


@pytest.mark.parametrize("body,where", [
    ("time,rain_mm\n2024-01-01 00:00,1\n2024-01-01 01:00,-2\n", "row 3: rain_mm"),
    ("time,rain_mm\n2024-01-01 00:00,1\n2023-12-31 23:00,2\n", "row 3: time"),
    ("time,rain_mm\n2024-01-01 00:00,1\nyesterday,2\n", "row 3: time"),
    ("time,rain_mm\n2024-01-01 00:00,1\n2024-01-01 01:00,\n", "row 3: rain_mm"),
])
def test_bad_rows_are_named(tmp_path, body, where):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(DataError) as err:
        read_hyetograph(p)
    assert where in str(err.value) and "bad.csv" in str(err.value)


@pytest.mark.shared_data
def test_the_wettest_six_hours_of_morakot(shared_data):
    hyeto = read_hyetograph(shared_data(*MORAKOT))
    core = hyeto.wettest(6 * 3600)
    assert core.duration_s == 6 * 3600 and len(core.depth_mm) == 6
    # Brute force over every 6-hour window of the hourly series.
    best = max(hyeto.depth_mm[i:i + 6].sum() for i in range(len(hyeto.depth_mm) - 5))
    assert core.total_mm == pytest.approx(best)
    assert core.start == hyeto.start + pd.Timedelta(
        hours=int(np.argmax([hyeto.depth_mm[i:i + 6].sum() for i in range(152)])))
