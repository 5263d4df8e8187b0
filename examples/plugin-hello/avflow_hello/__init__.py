"""avflow-hello: an example plugin package with one node, ``hello.caption``."""

from dataclasses import dataclass, replace

import numpy as np

import avflow
from avflow import Node, Port, VideoFrame, param


@dataclass(frozen=True)
class CaptionConfig:
    text: str = param("hello", "text drawn in the top-left corner")
    scale: float = param(1.0, "font scale", min=0.1)


class Caption(Node):
    """Draw a caption on every frame.

    Ports:
      - in ``frames`` (VideoFrame) -> out ``frames`` (VideoFrame), same timestamps.

    Example::

        caption:
          type: hello.caption
          inputs: {frames: decode.video}
          params: {text: "hi there"}
    """

    type = "hello.caption"
    Config = CaptionConfig
    inputs = {"frames": Port(VideoFrame, "frames to caption")}
    outputs = {"frames": Port(VideoFrame, "captioned frames")}

    def process(self, port, item, ctx):
        import cv2

        img = np.ascontiguousarray(item.image.copy())
        cv2.putText(img, self.config.text, (10, int(30 * self.config.scale)), cv2.FONT_HERSHEY_SIMPLEX,
                    self.config.scale, (255, 255, 0), 2, cv2.LINE_AA)
        return {"frames": replace(item, image=img)}


@avflow.hookimpl
def avflow_register_nodes():
    return [Caption]
