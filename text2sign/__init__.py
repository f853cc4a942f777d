"""text2sign: ablation studies of a text-to-sign-language video diffusion model on HPC clusters."""

__version__ = "0.1.0"
