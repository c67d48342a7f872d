"""Artefacts for serving: the TF Serving SavedModel and LiteRT ``.tflite`` files."""
