"""Pictures (``numbaconv plot``, ``numbaconv.plot``): each command writes a valid PNG of
sensible size from a freshly trained tiny model, the data behind each picture is the
library's own (checked against it), and bad input is a clear error."""

import json
import struct

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from numbaconv import analysis, cli, models, nn, plot  # noqa: E402
from numbaconv import data as datasets  # noqa: E402
from numbaconv.train import fit, write_history  # noqa: E402


def png_size(path):
    """(width, height) of a PNG file, after checking its signature and header chunk."""
    head = open(path, "rb").read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path} is no PNG"
    return struct.unpack(">II", head[16:24])


def sensible(path, max_bytes=400_000):
    width, height = png_size(path)
    assert 300 <= width <= 2000 and 200 <= height <= 2000, (width, height)
    assert path.stat().st_size <= max_bytes
    return width, height


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A cnn trained for two short epochs on part of the digits, saved, with its history."""
    folder = tmp_path_factory.mktemp("plot")
    nn.manual_seed(0)
    x_train, y_train, x_test, y_test = datasets.digits()
    model = models.build("cnn")
    result = fit(model, (x_train[:192], y_train[:192], x_test[:64], y_test[:64]), epochs=2,
                 stream=None, history=True)
    model.save(folder / "cnn.npz")
    write_history(folder / "history.json", {"run": {"model": "cnn", "data": "digits"},
                                            "epochs": result["history"]})
    return model.eval(), folder, result


# --------------------------------------------------------------------------- history
def test_history_records_each_epoch(trained):
    _, folder, result = trained
    record = plot.read_history(folder / "history.json")
    assert [e["epoch"] for e in record["epochs"]] == [1, 2]
    assert record["epochs"][-1]["test_accuracy"] == result["test_accuracy"]
    for e in record["epochs"]:
        assert 0 <= e["train_accuracy"] <= 1 and 0 <= e["test_accuracy"] <= 1
        assert e["loss"] > 0 and e["seconds"] > 0
    assert record["epochs"][1]["loss"] < record["epochs"][0]["loss"]


def test_plot_history(trained, tmp_path):
    _, folder, _ = trained
    out = tmp_path / "history.png"
    assert cli.main(["plot", "history", str(folder / "history.json"), "--out", str(out)]) == 0
    sensible(out)


def test_history_file_errors(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        plot.read_history(bad)
    for record in ({"epochs": [{"epoch": 1}]}, {"epochs": "x"}, {"run": 3, "epochs": []},
                   {"epochs": [{"epoch": 1, "loss": "high", "train_accuracy": 1,
                                "test_accuracy": 1, "seconds": 1}]}):
        bad.write_text(json.dumps(record))
        with pytest.raises(ValueError, match="holds no epochs"):
            plot.read_history(bad)
    with pytest.raises(ValueError, match="holds no epochs"):
        plot.plot_history({"run": [], "epochs": []}, tmp_path / "h.png")
    assert cli.main(["plot", "history", str(tmp_path / "none.json"), "--out",
                     str(tmp_path / "h.png")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- filters
def test_filter_grid_is_the_first_conv_weight(trained):
    model, _, _ = trained
    w = model[0].weight.data.astype(np.float64)
    grid = plot.filter_grid(model)
    assert grid.shape == w.shape == (32, 1, 3, 3)
    flat, raw = grid.reshape(32, -1), w.reshape(32, -1)
    np.testing.assert_allclose(flat.min(1), 0)
    np.testing.assert_allclose(flat.max(1), 1)
    lo, hi = raw.min(1, keepdims=True), raw.max(1, keepdims=True)
    np.testing.assert_allclose(flat, (raw - lo) / (hi - lo), atol=1e-12)


def test_filter_grid_mean_over_channels():
    nn.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 5, 3))
    w = model[0].weight.data.astype(np.float64).mean(axis=1, keepdims=True)
    grid = plot.filter_grid(model, reduce="mean")
    assert grid.shape == (5, 1, 3, 3)
    np.testing.assert_allclose(grid, plot._normalize(w), atol=1e-12)
    assert plot.filter_grid(model).shape == (5, 3, 3, 3)
    with pytest.raises(ValueError, match="reduce"):
        plot.filter_grid(model, reduce="max")


def test_plot_filters(trained, tmp_path):
    _, folder, _ = trained
    out = tmp_path / "filters.png"
    assert cli.main(["plot", "filters", str(folder / "cnn.npz"), "--model", "cnn",
                     "--out", str(out)]) == 0
    sensible(out)
    model = nn.Sequential(nn.Conv2d(3, 4, 5))
    w, h = png_size(plot.plot_filters(model, tmp_path / "rgb.png"))
    assert h > 3 * 50  # a row per filter, a column per input channel


# --------------------------------------------------------------------------- features
def test_feature_maps_are_each_stage_output(trained):
    model, _, _ = trained
    image = datasets.digits()[2][5]
    stages, probs = plot.feature_maps(model, image)
    x = image[None]
    layers = list(model)
    ends = [3, 6, 10]  # conv-BN-ReLU, conv-BN-ReLU, (max-pool) conv-BN-ReLU
    assert len(stages) == len(ends)
    for (name, maps), end in zip(stages, ends):
        expected = nn.Sequential(*layers[:end])(x)[0]
        np.testing.assert_array_equal(maps, expected)
        assert name.endswith("Conv2d > BatchNorm2d > ReLU")
    logits = model(x)[0].astype(np.float64)
    np.testing.assert_allclose(probs, np.exp(logits) / np.exp(logits).sum(), rtol=1e-6)


@pytest.mark.parametrize("name, stages", [("cnn", 3), ("resnet", 4), ("mobile", 3),
                                          ("inception", 2)])
def test_every_model_splits_into_conv_stages(name, stages):
    runs = plot._stages(models.build(name))
    assert sum(is_stage for _, _, is_stage in runs) == stages
    assert sum(len(layers) for _, layers, _ in runs) == len(models.build(name))


def test_plot_features(trained, tmp_path):
    _, folder, _ = trained
    out = tmp_path / "features.png"
    assert cli.main(["plot", "features", str(folder / "cnn.npz"), "--model", "cnn",
                     "--index", "7", "--out", str(out)]) == 0
    sensible(out)


# --------------------------------------------------------------------------- checkerboard
@pytest.mark.parametrize("k, s", [(3, 2), (4, 2), (5, 3), (3, 1)])
def test_checkerboard_panels_are_the_overlap_counts(k, s):
    panels = plot.checkerboard_panels(k, s, size=6, image=np.ones((6, 6)))
    counts = analysis.checkerboard(k, s, input_size=6).counts
    np.testing.assert_array_equal(panels["counts"], counts)
    # equal weights on a flat input: the transposed conv's output *is* the overlap count
    np.testing.assert_allclose(panels["transposed"], counts * s * s / (k * k), atol=1e-12)
    # resize-then-conv: every interior output sees k * k equal inputs
    m = k // 2 + 1
    np.testing.assert_allclose(panels["resize_conv"][m:-m, m:-m], 1.0, rtol=1e-6)
    interior = panels["transposed"][k:-k, k:-k]
    assert panels["uneven"] == (k % s != 0) == (interior.min() != interior.max())


def test_plot_checkerboard(tmp_path):
    uneven, even = tmp_path / "uneven.png", tmp_path / "stride1.png"
    assert cli.main(["plot", "checkerboard", "--kernel-size", "3", "--stride", "2",
                     "--out", str(uneven)]) == 0
    assert cli.main(["plot", "checkerboard", "--kernel-size", "3", "--stride", "1",
                     "--out", str(even)]) == 0
    # the uneven case gets a second row (the even kernel 4) for contrast; stride 1 has none
    assert png_size(uneven)[1] > 1.6 * png_size(even)[1]
    sensible(uneven)
    assert plot._contrast_kernel(3, 2) == 4 and plot._contrast_kernel(4, 2) == 5
    with pytest.raises(ValueError, match="positive"):
        plot.checkerboard_panels(0, 2)


# --------------------------------------------------------------------------- errors
def test_bad_paths_and_models_are_clear_errors(trained, tmp_path, capsys):
    _, folder, _ = trained
    saved = str(folder / "cnn.npz")
    cases = [
        (["plot", "filters", saved, "--model", "cnn", "--out",
          str(tmp_path / "missing" / "f.png")], "does not exist"),
        (["plot", "filters", saved, "--model", "cnn", "--out", str(tmp_path / "f.jpg")],
         "ending in .png"),
        (["plot", "filters", str(tmp_path / "nope.npz"), "--model", "cnn", "--out",
          str(tmp_path / "f.png")], "does not exist"),
        (["plot", "filters", saved, "--model", "resnet", "--out", str(tmp_path / "f.png")],
         "does not hold a 'resnet' model"),
        (["plot", "features", saved, "--model", "cnn", "--index", "9999", "--out",
          str(tmp_path / "f.png")], "--index"),
    ]
    for argv, message in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    not_npz = tmp_path / "model.npz"
    not_npz.write_text("hello")
    with pytest.raises(ValueError, match="not a saved model"):
        plot.load_model(not_npz, "cnn")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match="holds one array"):
        plot.load_model(tmp_path / "one.npy", "cnn")
    with pytest.raises(ValueError, match="size"):
        plot.checkerboard_panels(3, 2, size=1)
    with pytest.raises(ValueError, match="unknown model 'vgg'"):
        plot.load_model(saved, "vgg")
    with pytest.raises(SystemExit) as exit_info:  # argparse names the choices
        cli.main(["plot", "filters", saved, "--model", "vgg", "--out", "f.png"])
    assert exit_info.value.code == 2 and "invalid choice: 'vgg'" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.png"))
