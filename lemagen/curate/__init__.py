"""Curating what the models made, whatever the method: grading outputs made elsewhere
(`grade`), every trainer's format (`export`, with process-reward step labels in
`step_labels`), test-set decontamination (`decontam`), and what a run made (`stats`, with the
HTML report in `report` and `report_html`).
"""
