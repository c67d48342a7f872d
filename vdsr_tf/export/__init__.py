"""Exporters of a trained VDSR model to deployment formats (TFLite, SavedModel)."""
