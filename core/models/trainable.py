"""Registry entries for the compact architectures of small_nets: a local file when one is set, else the
reference weights this project trained and ships (reference_weights/, see core.models.reference); random
initialisation only on request, labelled untrained."""
from __future__ import annotations

from core.models.spec import register_model
from core.annotations import DIGITS_CATEGORIES, SHAPES_CATEGORIES
from core.models.small_nets import DCGANGenerator, DnCNN, EDSRLite, SmallCNN, SRCNN, UNet
from core.models.weights import WeightFileSource, file_weights_builder


def _register(name: str, make, *, task: str, title: str, description: str, **meta) -> None:
    source = WeightFileSource(name, type(make()).__name__)
    register_model(name, task=task, source="small-net", title=title, description=description,
                   weights="reference weights trained by this project (reference_weights/), or a local file",
                   availability=source.availability, **meta)(file_weights_builder(source, make))


_register("small_cnn_digits", lambda: SmallCNN(10), task="classification", title="Small CNN (digits)",
          description="Three conv blocks + dropout, 94k parameters; trains on sklearn digits in about a minute on CPU.",
          input_size=(3, 32, 32), categories=DIGITS_CATEGORIES, preprocessing="timm")
_register("unet_shapes", lambda: UNet(3, len(SHAPES_CATEGORIES), base=16), task="segmentation",
          title="U-Net (shapes)", description="Small 3-level U-Net, 0.12M parameters, for the synthetic shapes set.",
          operation="semantic", categories=SHAPES_CATEGORIES, trainable=True)
_register("dncnn", lambda: DnCNN(), task="restoration", title="DnCNN",
          description="17-layer residual denoiser (Zhang et al. 2017), 0.56M parameters.", operation="denoise")
_register("unet_denoise", lambda: UNet(3, 3, base=16, residual=True), task="restoration", title="U-Net denoiser",
          description="Small residual U-Net, 0.12M parameters.", operation="denoise")
_register("unet_deblur", lambda: UNet(3, 3, base=16, residual=True), task="restoration", title="U-Net deblur",
          description="Small residual U-Net trained for Gaussian blur, 0.12M parameters.", operation="deblur")
for _s in (2, 4):
    _register(f"srcnn_x{_s}", lambda s=_s: SRCNN(s), task="restoration", title=f"SRCNN x{_s}",
              description="9-1-5 SRCNN (Dong et al. 2014) on the bicubic upscale, 20k parameters.",
              operation="super-resolution", scale=_s)
    _register(f"edsr_lite_x{_s}", lambda s=_s: EDSRLite(s), task="restoration", title=f"EDSR-lite x{_s}",
              description="EDSR reduced to 8 residual blocks of 32 channels with pixel-shuffle upsampling, "
                          f"{0.20 if _s == 2 else 0.23:.2f}M parameters.",
              operation="super-resolution", scale=_s)
_register("dcgan_shapes", lambda: DCGANGenerator(nz=100), task="generation", title="DCGAN (32x32)",
          description="DCGAN generator (Radford et al. 2016) for 32x32 RGB images, 1.07M parameters.", latent_dim=100,
          amp=False, preprocessing="latent")
_register("cdcgan_digits", lambda: DCGANGenerator(nz=100, num_classes=10), task="generation",
          title="Conditional DCGAN (digits)", description="DCGAN generator conditioned on a digit label, 1.11M parameters.",
          latent_dim=100, num_classes=10, categories=DIGITS_CATEGORIES, amp=False, preprocessing="latent")
