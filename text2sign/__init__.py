"""text2sign: ablation studies of a text-to-sign-language video diffusion model on HPC clusters."""

__version__ = "0.1.0"
#: The oldest Python the project runs on (setup.cfg ``python_requires``; the job layer starts the
#: trainer with ``python -P``, new in 3.11). Older interpreters are refused with one line.
PYTHON_FLOOR = (3, 11)
