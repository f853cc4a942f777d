"""Evaluation: sampling on the job's devices, shared by all ranks, and scoring every clip.

``sampling.py`` draws videos from captions (DDIM, classifier-free guidance), ``inference.py``
shares that work between ranks, ``evaluate.py`` scores a run, ``audit.py`` asks whether the
caption drives the video, ``sample_writer.py`` writes the trainer's sample GIFs.
"""
