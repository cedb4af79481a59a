"""Whole CT series: jobs, their queue and worker, pages, API and corrections."""
