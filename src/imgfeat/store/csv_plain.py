"""``csv-plain``: the CSV format without Orange's header flags (``Class,n0,…,id,path``), for
tools that would take ``cD#Class`` as a column's name."""

from __future__ import annotations

from .csv import CsvFormat

FORMAT = CsvFormat("csv-plain", orange=False)
