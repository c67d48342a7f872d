"""Thin absl entry points. TensorFlow's C++ start-up chatter is hidden unless
the user asks for it (TF_CPP_MIN_LOG_LEVEL set in the environment)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
