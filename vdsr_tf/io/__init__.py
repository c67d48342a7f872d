"""Files in and out: images, atomic writes, training state, bundled files, presets
and their handles, ``.tflite`` reading, native libraries' stderr lines.
"""
