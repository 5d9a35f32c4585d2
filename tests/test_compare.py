"""tools/compare.py: one markdown table and one plot from several results.json files."""
import json
import math

from conftest import load_tool
from PIL import Image

from d2backbones.inference import json_safe, summarize


def write_run(directory, config, box, mask, lvis=False, zoo_name=None):
    """A results.json as tools/train_net.py writes it (APl NaN: no large objects)."""
    extra = {"APr": box - 10, "APc": box - 5, "APf": box + 2} if lvis else {}
    results = {
        "bbox": {"AP": box, "AP50": box + 20, "AP75": box + 3, "APs": box - 15, "APm": box, "APl": math.nan, **extra},
        "segm": {"AP": mask, "AP50": mask + 20, "AP75": mask + 2, "APs": mask - 15, "APm": mask, "APl": math.nan},
    }
    record = {
        "config_file": config,
        "zoo_name": zoo_name,
        "published": {"kind": "detector", "box_ap": 51.6, "mask_ap": 45.9} if zoo_name else None,
        "summary": summarize(results),
        "results": json_safe(results),
        "git_revision": "0123456789abcdef",
        "seconds": 12.5,
    }
    directory.mkdir(parents=True)
    path = directory / "results.json"
    path.write_text(json.dumps(record, allow_nan=False))
    return str(path)


def test_json_safe_turns_nan_into_null():
    assert json.loads(json.dumps(json_safe({"a": [math.nan, 1.0], "b": math.inf}), allow_nan=False)) == {
        "a": [None, 1.0],
        "b": None,
    }


def test_compare_writes_table_and_plots(tmp_path):
    runs = [
        write_run(tmp_path / "vitdet_b", "configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py", 51.2, 45.5,
                  zoo_name="vitdet/coco/mask_rcnn_vitdet_b_100ep"),
        write_run(tmp_path / "swin_b", "configs/Swin/LVIS/cascade_mask_rcnn_swin_b_in21k_50ep.py", 43.1, 38.7, lvis=True),
    ]
    benchmark = tmp_path / "benchmark.json"
    benchmark.write_text(json.dumps([{"config": "configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py", "params": 111.0e6,
                                      "gflops": 800.0, "infer_s_per_image": 0.5}]))
    output = tmp_path / "report"
    load_tool("compare").main([runs[0], str(tmp_path / "swin_b"), "--benchmark", str(benchmark), "--x", "params",
                               "--output", str(output)])

    lines = (output / "compare.md").read_text().splitlines()
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header[:4] == ["run", "config", "box AP", "mask AP"]
    assert {"APs", "APm", "APl", "APr", "APc", "APf", "params (M)", "published box / mask"} <= set(header)
    assert len(lines) == 4
    rows = {cells[0]: dict(zip(header, cells)) for cells in
            ([c.strip() for c in line.strip("|").split("|")] for line in lines[2:])}
    vitdet = rows["vitdet/coco/mask_rcnn_vitdet_b_100ep"]
    assert (vitdet["box AP"], vitdet["mask AP"], vitdet["params (M)"]) == ("51.2", "45.5", "111.0")
    assert vitdet["published box / mask"] == "51.6 / 45.9"
    assert vitdet["APl"] == "–" and vitdet["APr"] == "–"
    swin = rows["swin_b"]
    assert (swin["APr"], swin["APf"], swin["params (M)"]) == ("33.1", "45.1", "–")

    with Image.open(output / "compare.png") as plot:
        assert plot.size[0] > 300 and plot.size[1] > 200


def test_compare_draws_bars_without_an_x_axis(tmp_path):
    from d2backbones.inference.compare import collect_rows, plot_rows

    rows = collect_rows([write_run(tmp_path / name, f"configs/{name}.py", ap, ap - 5) for name, ap in (("a", 40.0), ("b", 45.0))])
    assert plot_rows(rows, str(tmp_path / "bars.png"), "gflops") == "bar"
    assert (tmp_path / "bars.png").stat().st_size > 0
