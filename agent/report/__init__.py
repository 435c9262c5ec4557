"""The weekly invoice check (每周发票状态检查): figures from the ledger
(figures.py), one self-contained HTML page (html.py), CSV rows and a chat
summary (text.py). Pure: no threads, `now` passed in; writing files and
scheduling are the service's (service/report.py)."""
