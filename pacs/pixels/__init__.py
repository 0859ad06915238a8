"""Pixel work: decoding and encoding frames, transcoding instances, rendering images."""
