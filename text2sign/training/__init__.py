"""Training one run: set-up, the step, the loop, DeepSpeed, checkpoints and exact resume.

``train.py`` reads top to bottom in the run's phases; ``step.py`` holds the pieces of one step,
``engine.py`` the one place DeepSpeed wraps the model, ``checkpoint.py`` what a resume needs.
"""
