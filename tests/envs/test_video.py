"""Video frames keep every pixel and name each egocentric panel (issue 51, item 13)."""

import imageio.v3 as iio
import numpy as np

from envs import video as vid
from envs.video import VideoWriter, compose


def test_mp4_frames_are_padded_to_whole_macro_blocks_never_cropped(tmp_path):
    frame = np.zeros((290, 168, 3), np.uint8)  # neither side a multiple of 16
    frame[-8:] = (255, 255, 0)  # the last rows, which a crop to 288 x 160 would lose
    frame[:, -8:] = (0, 255, 255)
    with VideoWriter(tmp_path / "v.mp4", 10) as video:
        for _ in range(3):
            video.append(frame)
    out = iio.imread(tmp_path / "v.mp4")
    assert out.shape == (3, 304, 176, 3)
    assert np.abs(out[1, 282:288, 20:140].astype(int) - (255, 255, 0)).mean() < 20  # kept, within H.264's loss
    assert np.abs(out[1, 20:260, 162:166].astype(int) - (0, 255, 255)).mean() < 20
    assert out[1, 294:, :].mean() < 20 and out[1, :, 170:].mean() < 20  # black padding


def _panels():
    red = np.zeros((40, 40, 3), np.uint8)
    red[:] = (200, 0, 0)
    blue = np.zeros((40, 40, 3), np.uint8)
    blue[:] = (0, 0, 200)
    return red, blue


def test_ego_panels_are_labelled_and_set_apart(tmp_path):
    overview = np.full((120, 160, 3), 30, np.uint8)
    red, blue = _panels()
    frame = compose(overview, [red, blue], ["step 0"], ["blue_0", "red_0"])
    assert frame.shape == (120 + vid.SEPARATOR + 40, 160, 3)
    rule = frame[120 : 120 + vid.SEPARATOR]
    assert (rule == vid.SEPARATOR_COLOUR).all()  # a line between the overview and the panels
    strip = frame[120 + vid.SEPARATOR :]
    assert (strip[:, 40 : 40 + vid.SEPARATOR] == vid.SEPARATOR_COLOUR).all()  # and between the panels
    for x in (0, 40 + vid.SEPARATOR):  # each panel has its name in white on black at its top left
        tag = strip[:12, x : x + 30]
        assert (tag > 180).all(-1).sum() > 5 and (tag == 0).all(-1).sum() > 10
    assert (strip[20:, 5:35] == red[0, 0]).all() and (strip[20:, 47:77] == blue[0, 0]).all()


def test_panels_too_wide_together_are_scaled_and_keep_their_separators():
    overview = np.zeros((120, 160, 3), np.uint8)
    red, blue = _panels()
    frame = compose(overview, [red, blue, red, blue, red], ["step 0"], list("abcde"))
    w = (160 - 4 * vid.SEPARATOR) // 5
    strip = frame[120 + vid.SEPARATOR :]
    assert frame.shape[1] == 160 and strip.shape[0] == w
    for i in range(1, 5):
        x = i * w + (i - 1) * vid.SEPARATOR
        assert (strip[:, x : x + vid.SEPARATOR] == vid.SEPARATOR_COLOUR).all()
