"""The local web page (``vdsr-app``): drop photos, compare with bicubic, download.

``jobs`` does the work without the web framework (the upscalers, one per
precision, loaded once; the files of each request; the clean-up); ``page``
is the Gradio page around it (``pip install "vdsr-tf[app]"``).
"""
