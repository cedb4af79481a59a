"""PACS connection over DICOMweb (issue 19): search and retrieve CT series, send results back."""
