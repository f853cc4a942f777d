"""Pose keypoints of real people: MediaPipe Holistic (through pose-format), in its own environment.

``worker.py`` is the one file that runs in the pose environment (``make pose-venv``; mediapipe
0.10.21 pins numpy<2 and protobuf<5, which the trainer cannot share); ``env.py`` finds that
environment; ``extract.py`` runs workers in parallel over the allocation's CPUs, cached by the
content of each clip; ``joints.py`` reads the ``.pose`` files back as the joints DTW-MJE scores.
"""
