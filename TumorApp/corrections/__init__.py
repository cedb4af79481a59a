"""Corrections of slice masks: the editor's data, and the export of every correction for training."""
