"""The report: figures, tables, Markdown and HTML, and the summary the commands print.
No torch, no Ray."""
