"""`source: digits`: 8x8 handwritten digits that ship inside cbrun (1,797 images, 10
classes), so a run works offline and trains in seconds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cbrun.config.data.common import DataSource


class DigitsData(DataSource):
    """The embedded digits: x is (n, 64) pixel values 0..16, y the digit 0..9."""

    source: Literal["digits"] = Field("digits", description="The embedded 8x8 digits.")

    def sample_shapes(self, folder):
        return {None: [64]}

    def file_labels(self, folder):
        from importlib import resources

        import numpy as np

        with resources.files("cbrun.datasets").joinpath("digits.npz").open("rb") as handle, \
                np.load(handle) as archive:
            return archive["y"]
