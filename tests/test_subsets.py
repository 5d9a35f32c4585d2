"""``<name>@<fraction>`` datasets: a fixed random share of a registered split."""
import pytest
from conftest import DEMO_CONFIG, cli_error_line
from detectron2.data import DatasetCatalog, MetadataCatalog

from d2backbones.data import register_subsets, register_user_dataset
from d2backbones.data.subsets import parse_subset_name, subset_indices


@pytest.fixture
def catalogs(monkeypatch):
    """Registrations made by a test vanish after it."""
    monkeypatch.setattr(DatasetCatalog, "data", dict(DatasetCatalog.data))
    monkeypatch.setattr(MetadataCatalog, "data", dict(MetadataCatalog.data))


@pytest.fixture
def shapes(tiny_shapes, catalogs):
    register_user_dataset("subset_base", *tiny_shapes["train"])
    return "subset_base"


def test_names_parse_with_and_without_a_seed():
    assert parse_subset_name("coco_2017_train@0.1") == ("coco_2017_train", 0.1, 0)
    assert parse_subset_name("a@b@0.25:seed=3") == ("a@b", 0.25, 3)
    assert parse_subset_name("coco_2017_train") is None


def test_draw_is_fixed_by_the_seed_and_sized_by_the_fraction():
    first, again, other = subset_indices(2000, 0.1, 0), subset_indices(2000, 0.1, 0), subset_indices(2000, 0.1, 1)
    assert len(first) == 200 and len(set(first.tolist())) == 200
    assert (first == again).all() and not (first == other).all()
    assert len(subset_indices(5, 0.01, 0)) == 1


def test_subset_holds_the_drawn_records_and_the_base_metadata(shapes):
    register_subsets([f"{shapes}@0.25", f"{shapes}@0.25:seed=1", "not_registered@0.5"])
    base = DatasetCatalog.get(shapes)
    subset = DatasetCatalog.get(f"{shapes}@0.25")
    assert [r["image_id"] for r in subset] == [base[i]["image_id"] for i in subset_indices(32, 0.25, 0)]
    assert len(subset) == 8
    assert {r["image_id"] for r in DatasetCatalog.get(f"{shapes}@0.25:seed=1")} != {r["image_id"] for r in subset}
    metadata = MetadataCatalog.get(f"{shapes}@0.25")
    assert metadata.thing_classes == MetadataCatalog.get(shapes).thing_classes
    assert (metadata.subset_of, metadata.subset_fraction) == (shapes, 0.25)
    assert "not_registered@0.5" not in DatasetCatalog.list()


def test_fraction_out_of_range_is_one_line(capsys):
    line = cli_error_line(["--config-file", DEMO_CONFIG, "dataloader.train.dataset.names=synthetic_shapes_train@1.5"],
                          capsys)
    assert "must be in (0, 1]" in line and "synthetic_shapes_train@0.1" in line
