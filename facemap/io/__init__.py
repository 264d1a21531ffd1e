"""Files in and out: images, video (PyAV), cameras, the CSV logs and the output folder."""
