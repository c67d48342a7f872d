"""Files in and out: images, atomic writes, training state, bundled files, ``.tflite``
reading, native libraries' stderr lines.
"""
