"""``hsc sim preview`` writes the stills and the clip a person looks at."""

from __future__ import annotations

import imageio.v2 as imageio
import numpy as np

from hybrid_snn_control.cli import main


def test_sim_preview_writes_pngs_and_an_animated_gif(tmp_path, capsys):
    rc = main(
        [
            "sim", "preview", "--env", "Navigation", "--steps", "6", "--size", "32",
            "--stills", "2", "--gif-every", "1", "--out", str(tmp_path),
        ]
    )  # fmt: skip
    assert rc == 0
    pngs = sorted(tmp_path.glob("frame_*.png"))
    assert [p.name for p in pngs] == ["frame_0000.png", "frame_0005.png"]
    still = imageio.imread(pngs[-1])
    # camera | events | overview (320 x 240) side by side
    assert still.shape[0] == 240 and still.shape[1] > 320 + 2 * 32
    gif = imageio.mimread(tmp_path / "episode.gif")
    assert len(gif) == 6
    assert not np.array_equal(gif[0], gif[-1])  # the rover moved
    assert "episode.gif" in capsys.readouterr().out


def test_sim_preview_rejects_bad_arguments(tmp_path, capsys):
    rc = main(["sim", "preview", "--steps", "0", "--out", str(tmp_path)])
    assert rc == 2
    assert "steps" in capsys.readouterr().err
