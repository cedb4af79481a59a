"""Training and evaluation of the liver/tumour network; plain Python, no Django imports."""
