"""Compact architectures that train in minutes on a CPU: the source texts' CNN, U-Net, DnCNN, SRCNN, EDSR-lite
and DCGAN. No published weights exist for these exact configurations: the project ships reference weights
trained with its own Fine-tune jobs (reference_weights/), and a local file or a checkpoint can replace them.

The restoration nets predict a correction of their input (or of its bicubic upscale), and the [0, 1] clamp is
applied only in eval mode (in training it zeroed the gradient of every clipped pixel). The U-Net, SRCNN and
EDSR-lite start with a zero last layer, so an untrained net is the identity rather than a random offset; DnCNN
uses the initialisation of the widely used PyTorch DnCNN code instead (see dncnn_init and bench/dncnn_curve.py)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F



def _restored(x: torch.Tensor, training: bool) -> torch.Tensor:
    return x if training else x.clamp(0, 1)


def _zero_init(conv: nn.Module) -> None:
    assert isinstance(conv, nn.Conv2d)  # every caller passes a net's last conv
    nn.init.zeros_(conv.weight)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)



class SmallCNN(nn.Module):
    """Three conv blocks + dropout + linear head (the source texts' "simple CNN")."""

    def __init__(self, num_classes: int = 10, dropout: float = 0.25):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(block(3, 32), block(32, 64), block(64, 128))
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class UNet(nn.Module):
    """A small U-Net (3 levels). `residual=True` predicts a correction added to the input (restoration)."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, base: int = 16, residual: bool = False):
        super().__init__()
        self.residual = residual

        def conv(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True),
                                 nn.Conv2d(cout, cout, 3, padding=1), nn.ReLU(inplace=True))

        self.enc1, self.enc2, self.enc3 = conv(in_ch, base), conv(base, base * 2), conv(base * 2, base * 4)
        self.up2 = nn.ConvTranspose2d(base * 4, base * 2, 2, stride=2)
        self.dec2 = conv(base * 4, base * 2)
        self.up1 = nn.ConvTranspose2d(base * 2, base, 2, stride=2)
        self.dec1 = conv(base * 2, base)
        self.out = nn.Conv2d(base, out_ch, 1)
        if residual:
            _zero_init(self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4  # two 2x poolings need sides divisible by 4
        xp = F.pad(x, (0, pw, 0, ph), mode="reflect") if (ph or pw) else x
        e1 = self.enc1(xp)
        e2 = self.enc2(F.max_pool2d(e1, 2))
        e3 = self.enc3(F.max_pool2d(e2, 2))
        d2 = self.dec2(torch.cat([self.up2(e3), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        y = self.out(d1)[..., :h, :w]
        return _restored(x + y, self.training) if self.residual else y


def dncnn_init(model: nn.Module) -> None:
    """DnCNN's initialisation as the widely used PyTorch DnCNN code does it (the MatConvNet original
    instead pushes small BatchNorm scales out to +-0.025): He-normal convolutions and BatchNorm scales drawn from
    N(0, 2/(9*64)) clipped to +-0.025 (biases 0). With PyTorch's defaults (BN scale 1) the net sat at the noisy
    input's PSNR for hundreds of steps; with these it learns from the first ones (bench/dncnn_curve.py)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.normal_(0.0, (2.0 / 9.0 / 64.0) ** 0.5).clamp_(-0.025, 0.025)
            nn.init.zeros_(m.bias)


class DnCNN(nn.Module):
    """Zhang et al. 2017: conv-BN-ReLU stack predicting the noise, subtracted from the input."""

    def __init__(self, channels: int = 3, depth: int = 17, width: int = 64):
        super().__init__()
        layers = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        dncnn_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _restored(x - self.body(x), self.training)


class SRCNN(nn.Module):
    """Dong et al. 2014 (9-1-5) on the bicubic-upscaled input, as a residual on top of bicubic."""

    def __init__(self, scale: int, channels: int = 3):
        super().__init__()
        self.scale = scale
        self.body = nn.Sequential(nn.Conv2d(channels, 64, 9, padding=4), nn.ReLU(inplace=True),
                                  nn.Conv2d(64, 32, 1), nn.ReLU(inplace=True), nn.Conv2d(32, channels, 5, padding=2))
        _zero_init(self.body[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return _restored(up + self.body(up), self.training)


class _ResBlock(nn.Module):
    def __init__(self, width: int, res_scale: float = 0.1):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(width, width, 3, padding=1))
        self.res_scale = res_scale

    def forward(self, x):
        return x + self.res_scale * self.body(x)


class EDSRLite(nn.Module):
    """Lim et al. 2017, reduced: 8 residual blocks of 32 channels, no BN, pixel-shuffle upsampling."""

    def __init__(self, scale: int, channels: int = 3, width: int = 32, blocks: int = 8):
        super().__init__()
        self.scale = scale
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*[_ResBlock(width) for _ in range(blocks)], nn.Conv2d(width, width, 3, padding=1))
        ups = []
        for _ in range({2: 1, 4: 2}[scale]):
            ups += [nn.Conv2d(width, width * 4, 3, padding=1), nn.PixelShuffle(2)]
        self.tail = nn.Sequential(*ups, nn.Conv2d(width, channels, 3, padding=1))
        _zero_init(self.tail[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        y = self.tail(h + self.body(h))
        return _restored(y + F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False), self.training)


class DCGANGenerator(nn.Module):
    """Radford et al. 2016 generator for 32x32 images; `num_classes` > 0 makes it conditional (label embedding
    concatenated to the latent). Input: latent vectors (nz) or, when conditional, nz + 1 with the label last."""

    def __init__(self, nz: int = 100, ngf: int = 64, channels: int = 3, num_classes: int = 0):
        super().__init__()
        self.nz, self.num_classes = nz, num_classes
        self.embed = nn.Embedding(num_classes, num_classes) if num_classes else None
        cin = nz + num_classes
        self.net = nn.Sequential(
            nn.ConvTranspose2d(cin, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, channels, 4, 2, 1, bias=False), nn.Tanh(),
        )
        for m in self.modules():  # DCGAN initialisation
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.flatten(1)
        if self.embed is not None:
            labels = z[:, -1].long().clamp(0, self.num_classes - 1)
            z = torch.cat([z[:, :-1], self.embed(labels)], 1)
        img = self.net(z[:, :, None, None])
        return (img + 1) / 2  # [0, 1] images


class DCGANDiscriminator(nn.Module):
    """The matching 32x32 discriminator (used by training jobs)."""

    def __init__(self, ndf: int = 64, channels: int = 3, num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        cin = channels + (1 if num_classes else 0)
        self.embed = nn.Embedding(num_classes, 32 * 32) if num_classes else None
        self.net = nn.Sequential(
            nn.Conv2d(cin, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = x * 2 - 1
        if self.embed is not None:
            x = torch.cat([x, self.embed(labels).view(-1, 1, 32, 32)], 1)
        return self.net(x).flatten()
