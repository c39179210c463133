"""lora-verify's loader lab: runs applications' own LoRA loading code on files and records what
each application does with them (see ../README.md)."""
