"""Whole CT series: volume reading and segmentation, slice views, corrections, exports."""
