"""The one-slice pipeline by stage: preprocess, segment, postprocess, measure, staging, render."""
