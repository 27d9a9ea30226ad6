"""What every stage is (`base`): an object that reads typed rows and yields what to keep and
what to set aside; the prompt templates model-calling stages fill (`templates`); and the row
book that lets a re-run write a finished row again without rebuilding it (`rowbook`).

The stages themselves live with their method: `lemagen.lema`, `lemagen.mistakes`,
`lemagen.lemma`, `lemagen.art`, `lemagen.cotnpot` and `lemagen.curate`. A command's name finds
its stage (`lemagen/<method>/<command>.py`), its CLI (`lemagen/cli/<method>.py`) and its
builder (`lemagen/api/<method>.py`).
"""
