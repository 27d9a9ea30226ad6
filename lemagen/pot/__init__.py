"""CoTnPoT: a chain of thought rewritten as a program (program of thought), run in a sandbox
(`sandbox`), its printed answer compared with the chain of thought's (`programs`)."""
