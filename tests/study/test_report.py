"""The study report on hand-made results: golden numbers for metrics, aggregates, tables and bold cells.

Every fake run has 8 test volumes (subjects s1-s4 of vendors A-D, phases ED and ES). Volume Dice (mean over
classes) is ``d + phase offset + vendor offset`` with ED +p / ES -p (p = 0.02 unless given) and vendors A, B
+0.01 / C, D -0.01, so a run's overall Dice is ``d``, its ED Dice ``d + p``, its A+B Dice ``d + 0.01``, etc.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb
from PIL import Image

from sspcmr.evaluation.charts import PALETTE, Line
from sspcmr.study import plots
from sspcmr.study.report import _position_lines, aggregate, format_cell, run_metrics, write_report
from sspcmr.study.tables import method_order as _method_order

SUBJECTS = (("s1", "A"), ("s2", "B"), ("s3", "C"), ("s4", "D"))
VENDOR_OFFSET = {"A": 0.01, "B": 0.01, "C": -0.01, "D": -0.01}
HD95_RV = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0, math.nan)  # mean 8.0 with the NaN excluded (7.0 as zero)
POSITIONS = (0.0, 0.25, 0.5, 1.0, 1.5)  # 1.5 lies beyond the apex: left out of the position plot


def _write_results(folder: Path, d: float, p: float) -> None:
    """volumes.csv, clinical.csv and slices.csv of one fake run (see the module docstring)."""
    volumes, slices = [], []
    for k, ((subject, vendor), phase) in enumerate((s, ph) for s in SUBJECTS for ph in ("ED", "ES")):
        m = d + (p if phase == "ED" else -p) + VENDOR_OFFSET[vendor]
        volumes.append({
            "dataset": "mnms", "subject": subject, "phase": phase, "vendor": vendor, "pathology": "NOR",
            "dice_LV": m + 0.05, "dice_MYO": m - 0.04, "dice_RV": m - 0.01, "dice_mean": m,
            "hd95_LV": 5.0, "hd95_MYO": 3.0, "hd95_RV": HD95_RV[k],
        })
        for z, position in enumerate(POSITIONS):
            # Inside [0, 1] the class mean is d + 0.1 * position; the slice beyond the apex scores 0.
            base = d + 0.1 * position if position <= 1 else 0.0
            slices.append({"dataset": "mnms", "subject": subject, "phase": phase, "slice": z, "position": position,
                           "dice_LV": base + 0.06, "dice_MYO": base - 0.03, "dice_RV": base - 0.03})
    clinical = pd.DataFrame({
        "subject": [s for s, _ in SUBJECTS], "vendor": [v for _, v in SUBJECTS],
        "LV_EF_err": [-2.0, 4.0, math.nan, -6.0], "LV_EF_abserr": [2.0, 4.0, math.nan, 6.0],
        "RV_EF_abserr": [1.0, 2.0, 3.0, 6.0],
    })
    results = folder / "results"
    results.mkdir(parents=True)
    pd.DataFrame(volumes).to_csv(results / "volumes.csv", index=False)
    pd.DataFrame(slices).to_csv(results / "slices.csv", index=False)
    clinical.to_csv(results / "clinical.csv", index=False)


LABELS = {"scratch": "Baseline", "mim": "MIM", "simclr": "SimCLR"}
PALETTE_RGB = [tuple(round(255 * c) for c in to_rgb(colour)) for colour in PALETTE]
"""The chart colours as 8-bit RGB, as they appear inside the markers of a PNG."""


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


def _colour_pixels(pixels: np.ndarray, colour: tuple[int, ...]) -> int:
    return int((pixels == colour).all(axis=2).sum())


def _record(root: Path, method: str, subset: str, seed: int, d: float, *, variant: str = "default",
            variant_kind: str = "default", p: float = 0.02, train_phases=("ED", "ES"), vendors=None,
            augmentation: bool = True) -> dict:
    run_id = f"{method}-{variant}-n{subset}-s{seed}"
    _write_results(root / run_id, d, p)
    return {
        "id": run_id, "kind": "scratch" if method == "scratch" else "finetune", "method": method,
        "label": LABELS[method], "variant": variant, "variant_kind": variant_kind, "subset": subset,
        "labelled_subjects": 8 if subset == "all" else int(subset),
        "labelled_slices": 100 if subset == "all" else 20 + 4 * seed, "seed": seed,
        "train_phases": list(train_phases), "vendors": vendors, "augmentation": augmentation,
        "dir": str(root / run_id),
    }


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """A full little study; MIM comes first so the Baseline must be moved to the top."""
    root = tmp_path_factory.mktemp("runs")
    return [
        _record(root, "mim", "2", 0, 0.75), _record(root, "mim", "2", 1, 0.77),
        _record(root, "mim", "all", 0, 0.79), _record(root, "mim", "all", 1, 0.81),
        _record(root, "scratch", "2", 0, 0.70), _record(root, "scratch", "2", 1, 0.74),
        _record(root, "scratch", "all", 0, 0.80), _record(root, "scratch", "all", 1, 0.84),
        _record(root, "simclr", "2", 0, 0.78),
        _record(root, "scratch", "all", 0, 0.78, variant="ed-only", variant_kind="phase", train_phases=("ED",)),
        _record(root, "mim", "all", 0, 0.79, variant="ed-only", variant_kind="phase", train_phases=("ED",), p=0.0),
        _record(root, "scratch", "all", 0, 0.77, variant="vendors-AB", variant_kind="vendor", vendors=["A", "B"]),
        _record(root, "mim", "all", 0, 0.76, variant="vendors-AB", variant_kind="vendor", vendors=["A", "B"]),
        _record(root, "mim", "all", 0, 0.70, variant="no-augmentation", variant_kind="augmentation",
                augmentation=False),
    ]


@pytest.fixture(scope="module")
def report(records: list[dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("report") / "study-report"  # not existing yet: write_report creates it
    return out, write_report(records, out, partial=True)


def _rows(markdown: str) -> list[str]:
    """The table lines of a Markdown file, header and separator included."""
    return [line for line in markdown.splitlines() if line.startswith("|")]


def test_run_metrics_match_a_hand_computation(records: list[dict]) -> None:
    row = run_metrics(records[0])  # MIM, 2 subjects, seed 0, d = 0.75
    expected = {
        "dice_mean": 0.75, "dice_LV": 0.80, "dice_MYO": 0.71, "dice_RV": 0.74,
        "hd95_LV": 5.0, "hd95_MYO": 3.0, "hd95_RV": 8.0,  # the NaN HD95 is excluded, not counted as 0
        "LV_EF_mae": 4.0, "RV_EF_mae": 3.0,  # absolute errors (the signed LV mean is -4/3), NaN excluded
        "dice_ED": 0.77, "dice_ES": 0.73, "dice_AB": 0.76, "dice_CD": 0.74,
    }
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, abs=1e-12), key
    assert math.isnan(row["dice_in_domain"]) and math.isnan(row["dice_out_domain"])
    assert row["n_volumes"] == 8
    assert (row["subset"], row["seed"], row["train_phases"], row["vendors"]) == ("2", 0, "ED+ES", "all")


def test_in_and_out_of_domain_split(records: list[dict], tmp_path: Path) -> None:
    phase = run_metrics(records[9])  # Baseline trained on ED only, d = 0.78: ED volumes +0.02, ES -0.02
    assert phase["dice_in_domain"] == pytest.approx(0.80)
    assert phase["dice_out_domain"] == pytest.approx(0.76)
    vendor = run_metrics(records[11])  # Baseline trained on A+B, d = 0.77: A, B volumes +0.01, C, D -0.01
    assert vendor["dice_in_domain"] == pytest.approx(0.78)
    assert vendor["dice_out_domain"] == pytest.approx(0.76)
    # A vendor variant over all vendors has no out-of-domain volume.
    everything = run_metrics({**records[11], "vendors": None})
    assert everything["dice_in_domain"] == pytest.approx(0.77)
    assert math.isnan(everything["dice_out_domain"])


def test_aggregate_mean_and_sample_std() -> None:
    metrics = pd.DataFrame({
        "variant": ["default"] * 3, "method": ["mim", "mim", "scratch"], "subset": [10, 10, "all"],
        "label": ["MIM", "MIM", "Baseline"], "seed": [0, 1, 0],
        "dice_mean": [0.80, 0.84, 0.70], "hd95_LV": [5.0, math.nan, 9.0],
    })
    result = aggregate(metrics)
    assert list(result["method"]) == ["mim", "scratch"]  # order of first appearance
    mim = result.iloc[0]
    assert (mim["subset"], mim["label"], mim["n_seeds"]) == ("10", "MIM", 2)
    assert mim["dice_mean_mean"] == pytest.approx(0.82)
    assert mim["dice_mean_std"] == pytest.approx(0.028284271247461905)  # sqrt(2 * 0.02^2 / 1), ddof=1
    assert mim["hd95_LV_mean"] == 5.0 and math.isnan(mim["hd95_LV_std"])  # NaN excluded
    baseline = result.iloc[1]
    assert baseline["n_seeds"] == 1 and baseline["dice_mean_mean"] == pytest.approx(0.70)
    assert math.isnan(baseline["dice_mean_std"])  # one seed: no spread


def test_format_cell() -> None:
    assert format_cell(0.8234, 0.0121, 3) == "0.823 ± 0.012"
    assert format_cell(12.34, 1.25, 1) == "12.3 ± 1.2"
    assert format_cell(0.8, math.nan, 3) == "0.800"
    assert format_cell(math.nan, math.nan, 1) == "–"


def test_every_file_is_written(report: tuple[Path, list[Path]]) -> None:
    out, paths = report
    tables = ["table1_dice", "differences_to_scratch", "per_class_dice", "hd95", "ef_error", "table2_phase",
              "table3_vendor", "table4_augmentation", "per_vendor_dice"]
    expected = {"runs.csv", "report.md", "dice_vs_subjects.png", "dice_by_position.png",
                *(f"{t}.{ext}" for t in tables for ext in ("csv", "md"))}
    assert {p.name for p in paths} == expected
    assert all(p.parent == out for p in paths)
    assert {p.name for p in out.iterdir()} == expected  # no temporary file left behind
    for name in ("dice_vs_subjects.png", "dice_by_position.png"):
        pixels = _pixels(out / name)
        assert pixels.shape == (plots.HEIGHT, plots.WIDTH, 3)
        for colour in PALETTE_RGB[:2]:  # two methods drawn at least: their lines and markers
            assert _colour_pixels(pixels, colour) > 100
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 14 and runs.loc[0, "dice_mean"] == pytest.approx(0.75)


def test_table1_numbers_and_bold(report: tuple[Path, list[Path]]) -> None:
    out, _ = report
    assert _rows((out / "table1_dice.md").read_text()) == [
        "| Method | 2 | all |",
        "|---|---|---|",
        "| *labelled slices* | 21.6 | 100 |",  # (20 + 24 + 20 + 24 + 20) / 5 runs of size 2
        "| Baseline | 0.720 ± 0.028 | 0.820 ± 0.028 |",
        "| MIM | 0.760 ± 0.014 | 0.800 ± 0.014 |",  # gains +0.04 and -0.02
        "| SimCLR | **0.780** | – |",  # gain +0.06: the biggest; nothing beats the Baseline with all subjects
    ]
    data = pd.read_csv(out / "table1_dice.csv", dtype={"subset": str})
    assert list(data.columns[:7]) == ["method", "label", "subset", "mean", "std", "n_seeds", "gain_over_baseline"]
    simclr = data[data["method"] == "simclr"].iloc[0]
    assert simclr["gain_over_baseline"] == pytest.approx(0.06) and simclr["n_seeds"] == 1
    assert math.isnan(simclr["std"])
    mim_all = data[(data["method"] == "mim") & (data["subset"] == "all")].iloc[0]
    assert mim_all["gain_over_baseline"] == pytest.approx(-0.02) and mim_all["std"] == pytest.approx(0.0141421356)
    assert list(data["best"]) == [False, False, False, False, True]
    assert list(data["labelled_slices_mean"]) == pytest.approx([21.6, 100.0, 21.6, 100.0, 21.6])


def test_per_class_hd95_and_ef_tables(report: tuple[Path, list[Path]]) -> None:
    out, _ = report
    dice = _rows((out / "per_class_dice.md").read_text())
    assert dice[0] == "| Method | Subjects | LV | MYO | RV |"
    assert dice[2] == "| Baseline | 2 | 0.770 ± 0.028 | 0.680 ± 0.028 | 0.710 ± 0.028 |"
    assert _rows((out / "hd95.md").read_text())[2] == "| Baseline | 2 | 5.0 ± 0.0 | 3.0 ± 0.0 | 8.0 ± 0.0 |"
    ef = _rows((out / "ef_error.md").read_text())
    assert ef[0] == "| Method | Subjects | LV EF | RV EF |"
    assert ef[-1] == "| SimCLR | 2 | 4.0 | 3.0 |"
    data = pd.read_csv(out / "per_class_dice.csv")
    assert list(data["label"]) == ["Baseline", "Baseline", "MIM", "MIM", "SimCLR"]
    assert data.loc[3, "dice_MYO_mean"] == pytest.approx(0.76)  # MIM, all: 0.80 - 0.04


def test_phase_and_vendor_tables(report: tuple[Path, list[Path]]) -> None:
    out, _ = report
    assert _rows((out / "table2_phase.md").read_text())[2:] == [
        "| ED | Baseline | 0.780 | 0.800 | 0.760 |",
        "| ED | MIM | **0.790** | 0.790 | **0.790** |",  # in-domain 0.790 < 0.800: not bold
    ]
    assert _rows((out / "table3_vendor.md").read_text())[2:] == [
        "| A + B | Baseline | 0.770 | 0.780 | 0.760 |",
        "| A + B | MIM | 0.760 | 0.770 | 0.750 |",  # worse everywhere: no bold
    ]
    phase = pd.read_csv(out / "table2_phase.csv")
    assert list(phase["train_phases"]) == ["ED", "ED"]
    assert phase.loc[1, "dice_out_domain_mean"] == pytest.approx(0.79)


def test_augmentation_table(report: tuple[Path, list[Path]]) -> None:
    out, _ = report
    assert _rows((out / "table4_augmentation.md").read_text()) == [
        "| Method | Training | ED | ES | Vendors A + B | Vendors C + D | Overall |",
        "|---|---|---|---|---|---|---|",
        "| MIM | with augmentation | 0.820 ± 0.014 | 0.780 ± 0.014 | 0.810 ± 0.014 | 0.790 ± 0.014 | 0.800 ± 0.014 |",
        "| MIM | without augmentation | 0.720 | 0.680 | 0.710 | 0.690 | 0.700 |",
    ]
    data = pd.read_csv(out / "table4_augmentation.csv")
    assert list(data["variant"]) == ["default", "no-augmentation"]
    assert data.loc[0, "dice_ED_mean"] == pytest.approx(0.82)  # MIM, all subjects: d = 0.79 and 0.81, ED +0.02


def test_report_markdown(report: tuple[Path, list[Path]]) -> None:
    out, _ = report
    text = (out / "report.md").read_text()
    assert "Partial results" in text
    assert "| default | default | 9 | Baseline, MIM, SimCLR | 2, all |" in text
    assert "| ed-only | phase | 2 |" in text and "| no-augmentation | augmentation | 1 |" in text
    for name in ("table1_dice", "table2_phase", "table3_vendor", "table4_augmentation", "hd95"):
        assert (out / f"{name}.md").read_text().strip() in text
    assert "](dice_vs_subjects.png)" in text and "](dice_by_position.png)" in text


def test_position_curves_pool_seeds_inside_the_heart(records: list[dict]) -> None:
    metrics = pd.DataFrame([run_metrics(r) for r in records])
    lines = _position_lines(metrics, _method_order(metrics), "2")
    assert [line.label for line in lines] == ["Baseline", "MIM", "SimCLR"]
    baseline = lines[0]  # seeds d = 0.70 and 0.74 pooled: 0.72 + 0.1 * position; bin 1.5 left out
    assert baseline.x == pytest.approx([0.05, 0.25, 0.55, 0.95])
    assert baseline.y == pytest.approx([0.72, 0.745, 0.77, 0.82])


def test_no_bold_and_no_variant_tables_without_such_runs(tmp_path: Path) -> None:
    records = [_record(tmp_path, "scratch", "5", 0, 0.80), _record(tmp_path, "mim", "5", 0, 0.78),
               _record(tmp_path, "mim", "all", 0, 0.85), _record(tmp_path, "scratch", "all", 0, 0.85)]
    out = tmp_path / "report"
    names = {p.name for p in write_report(records, out)}
    assert not {"table2_phase.md", "table3_vendor.md", "table4_augmentation.md"} & names
    assert not (out / "table2_phase.csv").exists()
    table = (out / "table1_dice.md").read_text()
    assert "**" not in table.split("\n\n", 1)[1]  # the caption's title is bold, no cell is (tie: no gain)
    assert _rows(table)[3:] == ["| Baseline | 0.800 | 0.850 |", "| MIM | 0.780 | 0.850 |"]
    report = (out / "report.md").read_text()
    assert "Partial results" not in report and "Table 2" not in report


def test_plot_handles_single_points_and_missing_values(tmp_path: Path) -> None:
    line = Line("only", [10.0, 20.0], [0.8, math.nan], [math.nan, 0.1])
    path = plots.plot_dice_vs_subjects([line], tmp_path / "one.png", "one point")
    pixels = _pixels(path)
    assert pixels.shape == (plots.HEIGHT, plots.WIDTH, 3)
    assert _colour_pixels(pixels, PALETTE_RGB[0]) > 20  # the single marker (and its legend entry)
    assert _colour_pixels(pixels, PALETTE_RGB[1]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["one.png"]  # written atomically: no temporary file left


def test_plot_changes_with_its_input(tmp_path: Path) -> None:
    """Not a blank canvas: another Dice value moves the drawing, a second method adds its colour."""
    first = Line("MIM", [2.0, 10.0], [0.7, 0.8], [0.01, 0.02])
    second = Line("MIM", [2.0, 10.0], [0.7, 0.6], [0.01, 0.02])
    one = _pixels(plots.plot_dice_vs_subjects([first], tmp_path / "one.png", "t"))
    other = _pixels(plots.plot_dice_vs_subjects([second], tmp_path / "other.png", "t"))
    two = _pixels(plots.plot_dice_vs_subjects([first, Line("SimCLR", [2.0, 10.0], [0.75, 0.7])],
                                              tmp_path / "two.png", "t"))
    assert (one != 255).any(axis=2).mean() > 0.02  # axes, text and data, not a blank canvas
    assert (one != other).any(axis=2).sum() > 500
    assert _colour_pixels(one, PALETTE_RGB[1]) == 0 and _colour_pixels(two, PALETTE_RGB[1]) > 100


def test_per_vendor_table_golden_values(report: tuple[Path, list[Path]]) -> None:
    """Vendor A's Dice is d + 0.01 in every run (ED and ES offsets cancel), C's d - 0.01; default variant only."""
    out, _ = report
    table = pd.read_csv(out / "per_vendor_dice.csv")
    scratch_a = table[(table["method"] == "scratch") & (table["subset"].astype(str) == "2") & (table["vendor"] == "A")]
    assert scratch_a["mean"].item() == pytest.approx((0.70 + 0.74) / 2 + 0.01)
    assert scratch_a["std"].item() == pytest.approx(np.std([0.71, 0.75], ddof=1))
    simclr_c = table[(table["method"] == "simclr") & (table["vendor"] == "C")]
    assert simclr_c["mean"].item() == pytest.approx(0.77) and math.isnan(simclr_c["std"].item())
    assert len(table) == 5 * 4  # scratch, mim at 2 and all, simclr at 2; four vendors; no variant rows
    text = (out / "per_vendor_dice.md").read_text()
    assert "A (2 volumes)" in text and "0.730 ± 0.028" in text
