"""Built-in generators: the two reference generators and the learned ones."""

from cxrbench.hookspecs import hookimpl


@hookimpl
def cxrbench_register_generators(registry):
    registry.add("real", "cxrbench.plugins.generators.real:RealGenerator",
                 summary="reference ceiling: real training images matching each condition")
    registry.add("noise", "cxrbench.plugins.generators.noise:NoiseGenerator",
                 summary="reference floor: structured noise that ignores the condition")
    registry.add("ddpm", "cxrbench.plugins.generators.ddpm:DDPMGenerator",
                 summary="conditional DDPM (diffusers UNet2DModel) with classifier-free guidance")
    registry.add("gan", "cxrbench.plugins.generators.gan:GANGenerator",
                 summary="conditional GAN: projection discriminator, hinge loss, R1, DiffAugment")
    registry.add("ldm", "cxrbench.plugins.generators.ldm:LDMGenerator",
                 summary="latent diffusion (AutoencoderKL + conditional UNet), lung-mask conditioned")
