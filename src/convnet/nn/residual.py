"""Residual blocks (He et al., 2016, "Deep Residual Learning for Image Recognition")."""

from .. import functional as F
from .conv import Conv2d
from .module import Module
from .normalization import BatchNorm2d
from .sequential import Sequential


class BasicBlock(Module):
    """ResNet's basic block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    conv1 is 3x3 with ``stride``, conv2 3x3; the shortcut is the identity, or a 1x1 convolution
    with ``stride`` plus batch norm (``downsample``) when the shape changes. Key names match
    torchvision's BasicBlock. Shapes: (N, in_channels, H, W) -> (N, out_channels, H/stride, W/stride).
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = BatchNorm2d(out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm2d(out_channels)
        if stride != 1 or in_channels != out_channels:
            self.downsample = Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                                         BatchNorm2d(out_channels))
        else:
            self.downsample = None

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(out + shortcut)
