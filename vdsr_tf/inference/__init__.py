"""Running the network on images: the ``Upscaler``, its runners and ``precision="auto"``,
LiteRT, JAX, Apache Beam.
"""
