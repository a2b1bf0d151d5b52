"""AugmentConfig: validation names the field; yaml loading; Ultralytics keys."""

from __future__ import annotations

import pytest

from detaug.config import AugmentConfig


@pytest.mark.parametrize(
    "field, value",
    [
        ("mosaic", -0.1), ("mixup", 1.01), ("cutmix", "a"), ("fliplr", 2), ("degrees", -1),
        ("translate", 1.5), ("scale", 1.0), ("shear", 90), ("perspective", 0.5), ("hsv_s", 1.5),
        ("mixup_alpha", 0), ("cutmix_alpha", float("inf")), ("min_area_ratio", 2), ("max_aspect_ratio", 0.5),
        ("min_visible", -0.1), ("img_size", 1), ("close_mosaic", -1), ("epochs", 0),
        ("mosaic_center", (1.5, 0.5)), ("weight_by_visibility", 1), ("fill", 300),
    ],
)
def test_invalid_value_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        AugmentConfig(**{field: value})


def test_from_yaml_reads_ultralytics_keys(tmp_path):
    p = tmp_path / "hyp.yaml"
    p.write_text("mosaic: 0.5\nmixup: 0.1\nimgsz: 320\nlr0: 0.01\nmosaic_center: [0.6, 1.4]\n")
    with pytest.raises(ValueError, match="lr0"):
        AugmentConfig.from_yaml(p)
    cfg = AugmentConfig.from_yaml(p, strict=False)
    assert (cfg.mosaic, cfg.mixup, cfg.img_size, cfg.mosaic_center) == (0.5, 0.1, 320, (0.6, 1.4))
    assert cfg.extra == {"lr0": 0.01}


def test_from_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("mixup: 3\n")
    with pytest.raises(ValueError, match="bad.yaml.*mixup"):
        AugmentConfig.from_yaml(p)
    q = tmp_path / "list.yaml"
    q.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="list.yaml"):
        AugmentConfig.from_yaml(q)


def test_close_mosaic_schedule():
    cfg = AugmentConfig(epochs=20, close_mosaic=5)
    assert [cfg.mixing_active(e) for e in (0, 14, 15, 19)] == [True, True, False, False]
    assert AugmentConfig().mixing_active(10**6)


@pytest.mark.parametrize(
    ("field", "value"),
    [("degrees", 180.0), ("degrees", 180.5), ("translate", 1.0), ("translate", 1.01), ("shear", 89.0),
     ("shear", 89.5), ("perspective", 0.1), ("perspective", 0.11), ("scale", 0.99), ("scale", 0.995)],
)
def test_config_and_transform_accept_the_same_ranges(field, value):
    from detaug.transforms.affine import RandomAffine

    def accepts(make):
        try:
            make()
        except ValueError:
            return False
        return True

    assert accepts(lambda: AugmentConfig(**{field: value})) == accepts(lambda: RandomAffine(**{field: value}))
