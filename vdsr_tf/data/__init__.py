"""Training patches: MATLAB-bicubic degradation in numpy and in ``tf.data``, and TFDS builders."""
