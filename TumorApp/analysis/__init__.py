"""Liver and tumour analysis of one CT slice; plain Python, no Django imports."""
