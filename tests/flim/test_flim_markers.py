"""FLIM marker files: round trips in both label bases, detection, checks, generated markers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from imgfeat.errors import ImgfeatError, ImgfeatWarning
from imgfeat.flim.markers import (
    MarkerError,
    Markers,
    detect_label_base,
    marker_path,
    markers_from_image_label,
    markers_from_mask,
    read_marker_set,
    read_markers,
    write_markers,
)


def _sample() -> Markers:
    return Markers(
        width=12,
        height=7,
        x=[0, 1, 2, 11, 5],
        y=[0, 0, 0, 6, 3],
        marker_id=[-1, -1, 4, 2, 2],
        label=[0, 0, 1, 2, 2],
    )


@pytest.mark.parametrize("base", [0, 1])
def test_round_trip_in_both_bases(tmp_path, base):
    m = _sample()
    p = write_markers(tmp_path / "img.txt", m, label_base=base)
    lines = p.read_text().splitlines()
    assert lines[0] == "5 12 7"
    assert lines[3] == f"2 0 4 {1 + base}"  # x y id label, label shifted to the base
    back = read_markers(p, label_base=base)
    assert back == m
    assert back.label.dtype == np.int32 and not back.label.flags.writeable


def test_wrong_base_is_an_error_or_a_shift(tmp_path):
    p = write_markers(tmp_path / "a.txt", _sample(), label_base=0)
    with pytest.raises(MarkerError, match="below the label base 1"):
        read_markers(p, label_base=1)
    q = write_markers(tmp_path / "b.txt", _sample(), label_base=1)
    assert read_markers(q, label_base=0).label.tolist() == [1, 1, 2, 3, 3]


def test_detection_base0_silent_base1_warns(tmp_path):
    p0 = write_markers(tmp_path / "a.txt", _sample(), label_base=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_markers(p0) == _sample()
    p1 = write_markers(tmp_path / "b.txt", _sample(), label_base=1)
    with pytest.warns(ImgfeatWarning, match="ambiguous"):
        assert read_markers(p1) == _sample()


def test_set_detection_uses_every_file(tmp_path):
    # file a has only label 1 (ambiguous alone); file b has a 0: the whole set is base 0
    a = Markers(4, 4, [1], [1], [0], [1])
    b = Markers(4, 4, [2], [2], [0], [0])
    pa = write_markers(tmp_path / "a.txt", a, label_base=0)
    pb = write_markers(tmp_path / "b.txt", b, label_base=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ms, base = read_marker_set([pa, pb])
    assert base == 0 and ms == [a, b]
    with pytest.warns(ImgfeatWarning):
        ms, base = read_marker_set([pa])
    assert base == 1 and ms[0].label.tolist() == [0]
    assert detect_label_base([np.array([3, 1]), np.array([2])]) == (1, True)
    with pytest.raises(MarkerError, match="negative"):
        detect_label_base([np.array([-1])])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty marker file"),
        ("2 10 10\n1 1 -1 1\n", "header says 2 marked pixels, the file has 1"),
        ("1 10 10\n1 1 -1 1\n2 2 -1 1\n", "header says 1"),
        ("a b c\n", "not 'N W H'"),
        ("1 10 10 3\n", "3-D"),
        ("1 10 10\n1 1 x 1\n", "line 2 '1 1 x 1'"),
        ("1 10 10\n1 1 1\n", "line 2"),
        ("1 10 10\n10 3 -1 1\n", r"\(10, 3\) lies outside the 10x10 image"),
        ("1 10 10\n3 -1 -1 1\n", "outside"),
        ("2 10 10\n3 3 -1 1\n3 3 -1 2\n", r"pixel \(3, 3\) is marked more than once"),
        ("1 0 10\n", "bad count or size"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, text, message):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(MarkerError, match=message) as info:
        read_markers(p, label_base=1)
    assert isinstance(info.value, ImgfeatError)
    assert str(p) in str(info.value) or "markers" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_file_and_bad_base(tmp_path):
    with pytest.raises(MarkerError, match="not found"):
        read_markers(tmp_path / "nope.txt")
    with pytest.raises(MarkerError, match="0 or 1"):
        read_markers(tmp_path / "nope.txt", label_base=2)
    with pytest.raises(MarkerError, match="0 or 1"):
        write_markers(tmp_path / "x.txt", _sample(), label_base=2)


def test_empty_markers_round_trip(tmp_path):
    m = Markers(5, 6, [], [], [], [])
    p = write_markers(tmp_path / "e.txt", m)
    assert p.read_text() == "0 5 6\n"
    assert read_markers(p, label_base=0) == m


def test_write_is_atomic(tmp_path, monkeypatch):
    p = write_markers(tmp_path / "m.txt", _sample())
    before = p.read_text()

    class Boom(Exception):
        pass

    def explode(*args, **kwargs):
        raise Boom

    monkeypatch.setattr("imgfeat.storage.os.replace", explode)
    with pytest.raises(Boom):
        write_markers(p, Markers(12, 7, [3], [3], [0], [1]))
    assert p.read_text() == before
    assert [q.name for q in tmp_path.iterdir()] == ["m.txt"]


def test_construction_checks():
    with pytest.raises(MarkerError, match="outside"):
        Markers(4, 4, [4], [0], [0], [0])
    with pytest.raises(MarkerError, match="more than once"):
        Markers(4, 4, [1, 1], [2, 2], [0, 0], [0, 1])
    with pytest.raises(MarkerError, match=">= 0"):
        Markers(4, 4, [1], [2], [0], [-1])
    with pytest.raises(MarkerError, match="label has 1 values"):
        Markers(4, 4, [1, 2], [2, 2], [0, 0], [0])


def test_stroke_ids_connected_components():
    # label 0: two separate strokes (one diagonal, 8-connected); label 1 touches stroke 1 but is apart
    m = Markers(10, 10, [0, 1, 2, 7, 8, 3, 4], [0, 1, 2, 7, 7, 2, 2], None, [0, 0, 0, 0, 0, 1, 1])
    ids = m.stroke_ids()
    assert ids[0] == ids[1] == ids[2]
    assert ids[3] == ids[4] != ids[0]
    assert ids[5] == ids[6] and ids[5] not in (ids[0], ids[3])
    assert sorted(set(ids.tolist())) == [0, 1, 2]
    per_label = m.stroke_ids(per_label=True)
    assert per_label.tolist() == [0, 0, 0, 0, 0, 1, 1]


def test_label_image_and_resize():
    m = _sample()
    img = m.to_label_image()
    assert img.shape == (7, 12) and img[6, 11] == 2 and img[0, 2] == 1 and (img == -1).sum() == 84 - 5
    big = m.resized(24, 14)
    assert (big.width, big.height) == (24, 14)
    assert big.to_label_image()[13, 23] == 2
    assert big.resized(12, 7) == m  # doubling then halving maps every pixel back


def test_marker_path(tmp_path):
    assert marker_path("a/b/img.01.png") == marker_path("a/b/img.01.jpg")
    assert marker_path("a/b/img.01.png").name == "img.01.txt"
    assert marker_path("a/b/x.png", tmp_path) == tmp_path / "x.txt"


def test_markers_from_mask_stay_inside_their_regions(tmp_path):
    mask = np.full((40, 40), 255, dtype=np.uint8)
    mask[2:18, 2:38] = 0
    mask[22:38, 2:18] = 1
    mask[22:38, 22:38] = 1  # two regions of class 1
    m = markers_from_mask(mask, ignore=255, strokes_per_region=2, length=9, seed=3)
    assert set(m.labels.tolist()) == {0, 1}
    assert np.array_equal(mask[m.y, m.x], m.label)  # every pixel carries its region's class
    assert len(set(m.stroke_ids().tolist())) >= 3  # class 1 has two disconnected regions
    assert markers_from_mask(mask, ignore=255, seed=3) == markers_from_mask(mask, ignore=255, seed=3)
    back = read_markers(write_markers(tmp_path / "m.txt", m, label_base=1), label_base=1)
    assert back == m
    with pytest.raises(MarkerError, match="2-D"):
        markers_from_mask(np.zeros((2, 2, 2), dtype=int))


def test_markers_from_image_label():
    m = markers_from_image_label(32, 24, label=4, strokes=3, length=8, thickness=3, seed=1)
    assert (m.width, m.height) == (32, 24)
    assert set(m.label.tolist()) == {4}
    assert sorted(set(m.marker_id.tolist())) == [0, 1, 2]
    assert 8 <= len(m) <= 3 * 8 * 9  # 3 strokes of 8 points, each a 3x3 square
    assert m == markers_from_image_label(32, 24, label=4, strokes=3, length=8, thickness=3, seed=1)
    assert m != markers_from_image_label(32, 24, label=4, strokes=3, length=8, thickness=3, seed=2)
