"""Data files: CSV with a header (state names allowed), folders of PNG images, and errors
that name the file, line, column, key or shape."""

from __future__ import annotations

import numpy as np
import pytest

import arprob as ar
from arprob.data import as_source, read_data_file

SPEC = ar.Spec(variables=[ar.Categorical("weather", 3, states=("sun", "rain", "snow")), ar.Binary("wet"),
                          ar.Real("temp")])


def test_csv_columns_by_name_with_state_names(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("temp,weather,wet\n21.5,sun,0\n3.0,2,1\n")
    data = read_data_file(SPEC, path)
    assert data["weather"].tolist() == [0, 2] and data["wet"].tolist() == [0, 1] and data["temp"].tolist() == [21.5, 3]
    model = ar.compile(SPEC)
    assert model.log_prob(data).shape == (2,)
    assert as_source(SPEC, str(path)).num_examples == 2


@pytest.mark.parametrize(
    "text,message",
    [
        ("weather,wet\nsun,0\n", "no column for variable 'temp'"),
        ("weather,wet,temp,x\nsun,0,1,2\n", "column 'x' is no variable"),
        ("weather,wet,temp\nfog,0,1\n", "line 2, column 'weather': 'fog' is not a number; its states are"),
        ("weather,wet,temp\nsun,0\n", "line 2: 2 fields where the header has 3"),
        ("weather,wet,temp\nsun,0,hot\n", "line 2, column 'temp': 'hot' is not a number"),
        ("weather,wet,temp\nsun,3,1\n", "has value 3.0"),
    ],
)
def test_csv_errors_name_the_line_column_and_value(tmp_path, text, message):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(ar.DataError, match=message.replace("(", "\\(")):
        as_source(SPEC, str(path))


def test_png_folder_is_the_records_of_the_image_variable(tmp_path):
    from PIL import Image

    spec = ar.Spec(variables=[ar.Ordinal("img", levels=256, shape=(4, 5))])
    images = np.random.default_rng(0).integers(0, 256, (3, 4, 5)).astype(np.uint8)
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / f"{i:03d}.png")
    assert np.array_equal(read_data_file(spec, tmp_path)["img"], images)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "999.png")
    with pytest.raises(ar.DataError, match="999.png: image of shape \\(4, 4\\); variable 'img' has shape \\(4, 5\\)"):
        as_source(spec, str(tmp_path))


def test_a_single_array_under_another_name_says_so(tmp_path):
    spec = ar.Spec(variables=[ar.Binary("img", shape=(8, 8))])
    np.savez(tmp_path / "d.npz", image=np.zeros((5, 8, 8), int))
    with pytest.raises(ar.DataError, match="only array is 'image' of shape \\(5, 8, 8\\); the spec's variables are"):
        as_source(spec, str(tmp_path / "d.npz"))
    np.save(tmp_path / "d.npy", np.zeros((200, 63)))
    with pytest.raises(ar.DataError, match="got shape \\(200, 63\\)"):
        as_source(spec, str(tmp_path / "d.npy"))


def test_atomic_folder_is_all_or_nothing(tmp_path):
    """A report folder is built beside its path and renamed in: an error inside leaves the
    old folder as it was and no temporary folder; an existing folder needs force."""
    from arprob.fileio import atomic_folder

    out = tmp_path / "report"
    with atomic_folder(out) as tmp:
        (tmp / "a.csv").write_text("new")
    assert (out / "a.csv").read_text() == "new"
    with pytest.raises(ValueError, match="exists; pass --force"):
        with atomic_folder(out):
            pass
    with pytest.raises(KeyboardInterrupt):
        with atomic_folder(out, force=True) as tmp:
            (tmp / "a.csv").write_text("half")
            raise KeyboardInterrupt
    assert (out / "a.csv").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    with atomic_folder(out, force=True) as tmp:
        (tmp / "b.csv").write_text("b")
    assert sorted(p.name for p in out.iterdir()) == ["b.csv"]
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="symbolic link"):
        with atomic_folder(tmp_path / "link", force=True):
            pass
